# scripts/bench's plot: the time per check of each row of the summary, on a log scale.
#   gnuplot -e "datafile='bench.dat'; outfile='bench.svg'" bench/bench.gp
# datafile (written by bench/bench_report.py): "label" mean_latency_ns ns_per_check, one row per
# group of bars; NaN where a bench printed nothing.
set terminal svg size 960,540 dynamic font "sans,12" background rgb "white"
set output outfile
set termoption noenhanced
set title "rl: time per check, or per HTTP request (log scale; lower is faster)"
set ylabel "nanoseconds"
set logscale y 10
set yrange [5:1e8]
set ytics ("1 ns" 1, "10 ns" 10, "100 ns" 100, "1 us" 1e3, "10 us" 1e4, "100 us" 1e5, "1 ms" 1e6, "10 ms" 1e7, "100 ms" 1e8)
set grid ytics
set key top left
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -30 scale 0
set datafile missing "NaN"
plot datafile using 2:xtic(1) title "latency of one call, mean (as its caller waits)" lc rgb "#4477aa", \
     '' using 3 title "1 s / throughput (cost per check with all callers)" lc rgb "#ee7733"
