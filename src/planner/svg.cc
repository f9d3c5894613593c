#include "planner/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "runtime/error.h"

namespace tamoe::plan {

namespace {
std::string fmt(double v, int digits = 4) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", digits, v);
  return b;
}
std::string color(double f) {  // f in [0, 1]: white -> dark blue
  f = std::clamp(f, 0.0, 1.0);
  int r = static_cast<int>(255 - f * (255 - 8));
  int g = static_cast<int>(255 - f * (255 - 48));
  int b = static_cast<int>(255 - f * (255 - 107));
  char s[16];
  std::snprintf(s, sizeof s, "#%02x%02x%02x", r, g, b);
  return s;
}
}  // namespace

std::string heatmap_svg(const Plan& p) {
  const int P = p.nranks;
  const int cells = std::min(P, 256);
  const int block = (P + cells - 1) / cells;
  const int ncell = (P + block - 1) / block;
  // Block means of X * P.
  std::vector<double> v(static_cast<size_t>(ncell) * ncell, 0.0);
  double vmax = 0;
  for (int a = 0; a < ncell; ++a)
    for (int b = 0; b < ncell; ++b) {
      double s = 0;
      int cnt = 0;
      for (int i = a * block; i < std::min(P, (a + 1) * block); ++i)
        for (int j = b * block; j < std::min(P, (b + 1) * block); ++j, ++cnt) s += p.at(i, j);
      double m = cnt ? s / cnt * P : 0;
      v[static_cast<size_t>(a) * ncell + b] = m;
      vmax = std::max(vmax, m);
    }
  const double size = 600, margin = 60, cell = size / ncell;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << size + margin + 120 << "\" height=\""
    << size + margin + 40 << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<text x=\"" << margin << "\" y=\"20\" font-size=\"14\">dispatch matrix X (" << P << " x "
    << P << ", mode " << mode_name(p.mode) << ", rho " << fmt(p.rho) << "), color = P*X_ij"
    << (block > 1 ? str(", ", block, "x", block, " block means") : "") << "</text>\n";
  o << "<g transform=\"translate(" << margin << "," << 40 << ")\">\n";
  for (int a = 0; a < ncell; ++a)
    for (int b = 0; b < ncell; ++b) {
      double f = vmax > 0 ? v[static_cast<size_t>(a) * ncell + b] / vmax : 0;
      o << "<rect x=\"" << fmt(b * cell, 6) << "\" y=\"" << fmt(a * cell, 6) << "\" width=\""
        << fmt(cell + 0.05, 6) << "\" height=\"" << fmt(cell + 0.05, 6) << "\" fill=\"" << color(f)
        << "\"/>\n";
    }
  // Node boundaries where nodes are contiguous and big enough to see.
  for (int r = 1; r < P; ++r)
    if (p.node[r] != p.node[r - 1] && r % block == 0 && P / block <= 128) {
      double z = r / block * cell;
      o << "<line x1=\"" << fmt(z, 6) << "\" y1=\"0\" x2=\"" << fmt(z, 6) << "\" y2=\"" << size
        << "\" stroke=\"#c00\" stroke-width=\"0.6\"/>\n";
      o << "<line x1=\"0\" y1=\"" << fmt(z, 6) << "\" x2=\"" << size << "\" y2=\"" << fmt(z, 6)
        << "\" stroke=\"#c00\" stroke-width=\"0.6\"/>\n";
    }
  o << "<rect x=\"0\" y=\"0\" width=\"" << size << "\" height=\"" << size
    << "\" fill=\"none\" stroke=\"#000\"/>\n";
  o << "<text x=\"" << size / 2 << "\" y=\"" << size + 20
    << "\" text-anchor=\"middle\">destination rank j</text>\n";
  o << "<text x=\"-30\" y=\"" << size / 2 << "\" transform=\"rotate(-90 -30 " << size / 2
    << ")\" text-anchor=\"middle\">source rank i</text>\n";
  // Legend.
  for (int k = 0; k < 10; ++k)
    o << "<rect x=\"" << size + 20 << "\" y=\"" << k * 20 << "\" width=\"20\" height=\"20\" fill=\""
      << color(1 - k / 9.0) << "\"/><text x=\"" << size + 46 << "\" y=\"" << k * 20 + 14 << "\">"
      << fmt(vmax * (1 - k / 9.0), 3) << "</text>\n";
  o << "</g>\n</svg>\n";
  return o.str();
}

std::string tradeoff_svg(const std::vector<TradeoffPoint>& pts, const std::string& title) {
  const double w = 640, h = 420, ml = 70, mr = 20, mt = 40, mb = 50;
  double kmax = 1e-9, tmin = 1e300, tmax = 0;
  for (const auto& p : pts) {
    kmax = std::max(kmax, p.kl);
    tmin = std::min(tmin, p.seconds);
    tmax = std::max(tmax, p.seconds);
  }
  tmin = 0;
  if (tmax <= tmin) tmax = tmin + 1e-9;
  auto X = [&](double k) { return ml + (w - ml - mr) * k / (kmax * 1.05); };
  auto Y = [&](double t) { return mt + (h - mt - mb) * (1 - (t - tmin) / ((tmax - tmin) * 1.05)); };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w << "\" height=\"" << h
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  o << "<text x=\"" << ml << "\" y=\"22\" font-size=\"14\">" << title << "</text>\n";
  o << "<line x1=\"" << ml << "\" y1=\"" << h - mb << "\" x2=\"" << w - mr << "\" y2=\"" << h - mb
    << "\" stroke=\"#000\"/><line x1=\"" << ml << "\" y1=\"" << mt << "\" x2=\"" << ml << "\" y2=\""
    << h - mb << "\" stroke=\"#000\"/>\n";
  for (int k = 0; k <= 4; ++k) {
    double kv = kmax * 1.05 * k / 4, tv = tmin + (tmax - tmin) * 1.05 * k / 4;
    o << "<text x=\"" << fmt(X(kv), 6) << "\" y=\"" << h - mb + 16 << "\" text-anchor=\"middle\">"
      << fmt(kv, 3) << "</text>\n";
    o << "<text x=\"" << ml - 6 << "\" y=\"" << fmt(Y(tv) + 4, 6) << "\" text-anchor=\"end\">"
      << fmt(tv * 1e3, 3) << "</text>\n";
  }
  o << "<text x=\"" << (ml + w - mr) / 2 << "\" y=\"" << h - 12
    << "\" text-anchor=\"middle\">KL from uniform (nats)</text>\n";
  o << "<text x=\"16\" y=\"" << (mt + h - mb) / 2 << "\" transform=\"rotate(-90 16 "
    << (mt + h - mb) / 2 << ")\" text-anchor=\"middle\">predicted dispatch time (ms)</text>\n";
  std::vector<TradeoffPoint> sk;
  for (const auto& p : pts)
    if (p.label == "sinkhorn") sk.push_back(p);
  std::sort(sk.begin(), sk.end(), [](auto& a, auto& b) { return a.kl < b.kl; });
  o << "<polyline fill=\"none\" stroke=\"#1f4e8c\" stroke-width=\"2\" points=\"";
  for (const auto& p : sk) o << fmt(X(p.kl), 6) << "," << fmt(Y(p.seconds), 6) << " ";
  o << "\"/>\n";
  for (const auto& p : pts) {
    std::string c = p.label == "sinkhorn" ? "#1f4e8c" : p.label == "lp" ? "#c00" : "#080";
    o << "<circle cx=\"" << fmt(X(p.kl), 6) << "\" cy=\"" << fmt(Y(p.seconds), 6)
      << "\" r=\"4\" fill=\"" << c << "\"><title>" << p.label << " eps=" << fmt(p.eps)
      << " KL=" << fmt(p.kl) << " T=" << fmt(p.seconds * 1e3) << " ms</title></circle>\n";
    if (p.label != "sinkhorn")
      o << "<text x=\"" << fmt(X(p.kl) + 6, 6) << "\" y=\"" << fmt(Y(p.seconds) - 6, 6)
        << "\" fill=\"" << c << "\">" << p.label << "</text>\n";
  }
  o << "</svg>\n";
  return o.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  if (!out) fail(Status::system, path, "a writable file", "cannot open it");
  out << text;
  if (!out) fail(Status::system, path, "a complete write", "an I/O error");
}

}  // namespace tamoe::plan
