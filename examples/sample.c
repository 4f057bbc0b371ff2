/* A small translation unit with a mix of loops, branches, calls, globals and strings. */
#include <stdio.h>
#include <string.h>

struct point { int x, y; };

static int table[16] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597};
const char *greeting = "hello # world; not a comment";

int sum_array(const int *a, int n) {
  int s = 0;
  for (int i = 0; i < n; i++)
    s += a[i];
  return s;
}

static int clamp(int v, int lo, int hi) {
  if (v < lo) return lo;
  if (v > hi) return hi;
  return v;
}

int manhattan(struct point a, struct point b) {
  int dx = a.x - b.x, dy = a.y - b.y;
  return (dx < 0 ? -dx : dx) + (dy < 0 ? -dy : dy);
}

int classify(int c) {
  switch (c) {
  case 0: return 10;
  case 1: return 20;
  case 2: return 35;
  case 7: return 70;
  default: return clamp(c, -5, 5);
  }
}

unsigned hash_string(const char *s) {
  unsigned h = 5381;
  while (*s)
    h = h * 33u ^ (unsigned char)*s++;
  return h;
}

int fib_lookup(int i) { return table[i & 15]; }

void bubble_sort(int *a, int n) {
  for (int i = 0; i < n; i++)
    for (int j = 0; j + 1 < n - i; j++)
      if (a[j] > a[j + 1]) {
        int t = a[j];
        a[j] = a[j + 1];
        a[j + 1] = t;
      }
}

int main(void) {
  int a[5] = {5, 3, 1, 4, 2};
  struct point p = {1, 2}, q = {4, -2};
  bubble_sort(a, 5);
  printf("%d %d %d %u %d\n", sum_array(a, 5), manhattan(p, q), classify(7),
         hash_string(greeting), fib_lookup(strlen(greeting)));
  return 0;
}
