/* visualiser — the weather crew's C agent.
**   chart.render  TSV lines "period<TAB>temp_max<TAB>temp_min<TAB>precipitation"
**                 in; an SVG chart out: monthly precipitation as bars on the
**                 right axis, mean daily highs and lows as lines on the left.
** Pure arithmetic and snprintf: the same input draws the same bytes. */
#include "plexus.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "plexus_agent.h"

#define MAX_POINTS 1200
typedef struct { char period[16]; double hi, lo, rain; } point;

typedef struct { char *data; size_t len, cap; int failed; } buf;

static void printf_(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void printf_(buf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, b->data ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) { b->failed = 1; return; }
        if (b->data && b->len + (size_t)n < b->cap) { b->len += (size_t)n; return; }
        size_t cap = b->cap ? b->cap * 2 : 16384;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) { b->failed = 1; return; }
        b->data = d; b->cap = cap;
    }
}

static int parse(const plexus_envelope *msg, point *pts) {
    int n = 0;
    const char *p = (const char *)msg->payload, *end = p + msg->payload_len;
    while (p < end && n < MAX_POINTS) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        if (!e) e = end;
        char line[128];
        size_t len = (size_t)(e - p) < sizeof line - 1 ? (size_t)(e - p) : sizeof line - 1;
        memcpy(line, p, len);
        line[len] = 0;
        if (sscanf(line, "%15[^\t]\t%lf\t%lf\t%lf", pts[n].period, &pts[n].hi, &pts[n].lo, &pts[n].rain) == 4) n++;
        p = e + 1;
    }
    return n;
}

/* A round step for an axis spanning `span` with about `ticks` ticks. */
static double nice_step(double span, int ticks) {
    double raw = span / ticks, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static plexus_status render(const plexus_envelope *msg) {
    static point pts[MAX_POINTS];
    int n = parse(msg, pts);
    if (n < 2) return plexus_reply_error(msg, PLEXUS_INVALID_ARGUMENT, "chart.render needs at least two TSV lines: period, temp_max, temp_min, precipitation");
    const double W = 960, H = 440, L = 60, R = 60, T = 50, B = 60, pw = W - L - R, ph = H - T - B;
    double tmin = 1e9, tmax = -1e9, rmax = 0;
    for (int i = 0; i < n; i++) {
        if (pts[i].lo < tmin) tmin = pts[i].lo;
        if (pts[i].hi > tmax) tmax = pts[i].hi;
        if (pts[i].rain > rmax) rmax = pts[i].rain;
    }
    double ts = nice_step(tmax - tmin, 6), t0 = floor(tmin / ts) * ts, t1 = ceil(tmax / ts) * ts;
    double rs = nice_step(rmax > 0 ? rmax : 1, 5), r1 = ceil((rmax > 0 ? rmax : 1) / rs) * rs;
    double slot = pw / n;
#define X(i) (L + slot * ((i) + 0.5))
#define YT(v) (T + ph * (1 - ((v) - t0) / (t1 - t0)))
#define YR(v) (T + ph * (1 - (v) / r1))
    buf b = {0};
    printf_(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\" role=\"img\" "
                "aria-label=\"Monthly precipitation and mean daily temperatures\">\n", W, H, W, H);
    printf_(&b, "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n");
    printf_(&b, "<text x=\"%.0f\" y=\"28\" font-size=\"16\" font-weight=\"bold\">Monthly precipitation and mean daily high and low, %s to %s</text>\n",
            L, pts[0].period, pts[n - 1].period);
    for (double v = t0; v <= t1 + ts / 2; v += ts) {
        printf_(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n", L, W - R, YT(v), YT(v));
        printf_(&b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%g °C</text>\n", L - 6, YT(v) + 4, v);
    }
    for (double v = 0; v <= r1 + rs / 2; v += rs)
        printf_(&b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#2b6cb0\">%g mm</text>\n", W - R + 6, YR(v) + 4, v);
    for (int i = 0; i < n; i++) {
        double y = YR(pts[i].rain);
        printf_(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#90cdf4\"><title>%s: %.1f mm</title></rect>\n",
                X(i) - slot * 0.35, y, slot * 0.7, T + ph - y, pts[i].period, pts[i].rain);
        if (i == 0 || strncmp(pts[i].period, pts[i - 1].period, 4) != 0) {
            printf_(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n", X(i) - slot / 2, X(i) - slot / 2, T + ph, T + ph + 8);
            printf_(&b, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#333\">%.4s</text>\n", X(i) - slot / 2 + 4, T + ph + 20, pts[i].period);
        }
    }
    const char *colors[2] = { "#c53030", "#2c5282" };
    for (int line = 0; line < 2; line++) {
        printf_(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", colors[line]);
        for (int i = 0; i < n; i++) printf_(&b, "%s%.1f,%.1f", i ? " " : "", X(i), YT(line == 0 ? pts[i].hi : pts[i].lo));
        printf_(&b, "\"/>\n");
    }
    printf_(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", L, W - R, T + ph, T + ph);
    double ly = H - 18;
    printf_(&b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"14\" height=\"10\" fill=\"#90cdf4\"/><text x=\"%.0f\" y=\"%.0f\">precipitation (right axis)</text>\n", L, ly - 9, L + 20, ly);
    printf_(&b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#c53030\" stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">mean daily high</text>\n", L + 220, L + 240, ly - 4, ly - 4, L + 246, ly);
    printf_(&b, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.0f\" y2=\"%.0f\" stroke=\"#2c5282\" stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\">mean daily low</text>\n", L + 380, L + 400, ly - 4, ly - 4, L + 406, ly);
    printf_(&b, "</svg>\n");
    plexus_status s = b.failed ? plexus_reply_error(msg, PLEXUS_NO_MEMORY, "out of memory")
                               : plexus_reply(msg, "image/svg+xml", b.data, b.len);
    free(b.data);
    return s;
}

static plexus_status handle(const plexus_envelope *msg) {
    if (plexus_is(msg, "chart.render")) return render(msg);
    return PLEXUS_UNSUPPORTED;
}

static const plexus_capability caps[] = {
    { sizeof(plexus_capability), "chart.render", "draws monthly temperatures and precipitation as SVG", "TSV: period, temp_max, temp_min, precipitation", "image/svg+xml" },
};

PLEXUS_AGENT("visualiser", "1.0.0", caps, handle)
