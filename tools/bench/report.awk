# report.awk - summary tables of tools/bench/run.
# Input: DESC lines (DESC, row, description), then raw.tsv lines
#   row  fs  rep  seconds  exit-status("0", other, or "skip")  daemon-cpu-seconds
# Variables: fslist (comma list, native first), rows (comma list), md (markdown
# output file or empty).
# Ratios: median(fs)/median(native); spread: [min(fs), max(fs)] / median(native).
function median(arr, n,   i, j, t, b) {
  for (i = 1; i <= n; i++) b[i] = arr[i]
  for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j+1] = b[j]; b[j+1] = t }
  if (n % 2) return b[(n+1)/2]; return (b[n/2] + b[n/2+1]) / 2
}
function label(f) { return f == "overlay" ? "fuse-overlayfs" : f == "hp" ? "passthrough_hp" : f == "base" ? "casfs-base" : f }
function target(r) { g = r; sub(/\..*/, "", g)
  return g == "build" ? 1.05 : g == "noop" ? 1.10 : g == "meta" ? 1.5 : 1.3 }
BEGIN { nf = split(fslist, F, ","); nr = split(rows, R, ","); if (R[nr] == "") nr-- }
$1 == "DESC" { desc[$2] = $3; next }
$5 == "0" && $4 != "" { k = $1 SUBSEP $2; n[k]++; v[k, n[k]] = $4 + 0; if ($6 != "") { nc[k]++; c[k, nc[k]] = $6 + 0 } }
$5 != "0" && $5 != "skip" { fail[$1 SUBSEP $2] = 1 }
$5 == "skip" { skip[$1 SUBSEP $2] = 1 }
END {
  for (ri = 1; ri <= nr; ri++) {
    r = R[ri]
    for (fi = 1; fi <= nf; fi++) {
      f = F[fi]; k = r SUBSEP f
      if (fail[k]) { cell[r, f] = "FAIL"; continue }
      if (!n[k]) { cell[r, f] = skip[k] ? "skip" : "-"; continue }
      for (i = 1; i <= n[k]; i++) a[i] = v[k, i]
      med[k] = median(a, n[k]); mn = a[1]; mx = a[1]
      for (i = 2; i <= n[k]; i++) { if (a[i] < mn) mn = a[i]; if (a[i] > mx) mx = a[i] }
      lo[k] = mn; hi[k] = mx
      if (nc[k]) { for (i = 1; i <= nc[k]; i++) a[i] = c[k, i]; cpu[k] = median(a, nc[k]) } else cpu[k] = ""
    }
  }
  # text table
  printf "%-13s %-30s %18s", "workload", "", "native s [min-max]"
  for (fi = 2; fi <= nf; fi++) printf "  %-22s", label(F[fi]) " x [spread]"
  printf "  %s\n", "target"
  for (ri = 1; ri <= nr; ri++) {
    r = R[ri]; k0 = r SUBSEP "native"
    if (k0 in med) s = sprintf("%7.3f [%.3f-%.3f]", med[k0], lo[k0], hi[k0]); else s = cell[r, "native"]
    printf "%-13s %-30s %18s", r, desc[r], s
    for (fi = 2; fi <= nf; fi++) {
      k = r SUBSEP F[fi]
      if ((k in med) && (k0 in med) && med[k0] > 0) {
        x = int(100 * med[k] / med[k0] + 0.5) / 100
        s = sprintf("%5.2fx [%.2f-%.2f]", x, lo[k] / med[k0], hi[k] / med[k0])
        if (F[fi] == "casfs") { s = s (x <= target(r) ? "  ok " : " MISS"); if (x > target(r)) miss = miss sprintf(" %s %.2fx (target <=%.2fx);", r, x, target(r)); else okn++ }
      } else if (k in med) s = sprintf("%.3fs", med[k]); else s = cell[r, F[fi]]
      printf "  %-22s", s
    }
    printf "  <=%.2fx\n", target(r)
  }
  for (fi = 2; fi <= nf; fi++) if (F[fi] == "casfs") hascasfs = 1
  if (hascasfs) printf "\ncasfs: %d rows within target;%s\n", okn, (miss == "" ? " no target missed" : " missed:" miss)
  # daemon CPU
  printf "\nFUSE daemon CPU seconds per run (median; user+sys of the daemon process):\n"
  printf "%-13s", "workload"; for (fi = 2; fi <= nf; fi++) printf " %15s", label(F[fi]); printf "\n"
  for (ri = 1; ri <= nr; ri++) {
    r = R[ri]; printf "%-13s", r
    for (fi = 2; fi <= nf; fi++) { k = r SUBSEP F[fi]; printf " %15s", (k in cpu && cpu[k] != "") ? sprintf("%.2f", cpu[k]) : "-" }
    printf "\n"
  }
  if (md != "") {
    printf "| workload | what | native s (min-max) |" > md
    for (fi = 2; fi <= nf; fi++) printf " %s x native (min-max) |", label(F[fi]) > md
    printf " target (casfs) |\n|---|---|---:|" > md
    for (fi = 2; fi <= nf; fi++) printf "---:|" > md
    printf "---:|\n" > md
    for (ri = 1; ri <= nr; ri++) {
      r = R[ri]; k0 = r SUBSEP "native"
      if (k0 in med) s = sprintf("%.3f (%.3f-%.3f)", med[k0], lo[k0], hi[k0]); else s = cell[r, "native"]
      printf "| %s | %s | %s |", r, desc[r], s > md
      for (fi = 2; fi <= nf; fi++) {
        k = r SUBSEP F[fi]
        if ((k in med) && (k0 in med) && med[k0] > 0) {
          x = int(100 * med[k] / med[k0] + 0.5) / 100
          s = sprintf("%.2fx (%.2f-%.2f)", x, lo[k] / med[k0], hi[k] / med[k0])
          if (F[fi] == "casfs") s = (x <= target(r) ? s : "**" s "**")
        } else s = cell[r, F[fi]]
        printf " %s |", s > md
      }
      printf " <=%.2fx |\n", target(r) > md
    }
    printf "\nFUSE daemon CPU seconds per run (median, user+sys):\n\n| workload |" > md
    for (fi = 2; fi <= nf; fi++) printf " %s |", label(F[fi]) > md
    printf "\n|---|" > md; for (fi = 2; fi <= nf; fi++) printf "---:|" > md; printf "\n" > md
    for (ri = 1; ri <= nr; ri++) {
      r = R[ri]; printf "| %s |", r > md
      for (fi = 2; fi <= nf; fi++) { k = r SUBSEP F[fi]; printf " %s |", (k in cpu && cpu[k] != "") ? sprintf("%.2f", cpu[k]) : "-" > md }
      printf "\n" > md
    }
  }
}
