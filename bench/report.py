"""bench/report.py: the goals, the markdown report and the chart, from run.py's result dict."""

import textwrap

NAMES = {"infinidata": "infinidata", "numpy": "NumPy memmap", "datasets": "HF datasets",
         "infinidata-0.0.1": "Infinidata 0.0.1"}
CHART_SKIPPED = ""


def label(w, p, d):
    rows, g = p["rows"], p["g_rows"]
    gb = g * 128 * 4
    gtag = f"goal table {gb / 2**30:.3g} GiB" if gb >= 2**30 else f"goal table {gb / 2**20:.3g} MiB"
    gtag += f" f32 ({g:,} x 128)"
    return {
        "construct": f"construct {rows:,} rows ({d.get('main_gb', 0):.2f} GB) from np.memmap",
        "contiguous_pass": f"contiguous pass, batches of {p['batch']}",
        "shuffle_view": f"shuffle (a view of {rows:,} rows)",
        "shuffled_pass": f"shuffled pass, batches of {p['batch']}, 1 thread",
        "shuffled_pass_t2": "shuffled pass, threads=2 readahead=4",
        "point_reads": f"{p['point_reads']:,} single-row reads of a shuffled view",
        "random_take": f"{min(p['take_rows'], rows):,}-row random take",
        "concat_1000": f"concat of {p['concat_tables']:,} small tables + a pass",
        "composed_300": f"read {min(p['take_rows'], rows):,} random rows after {p['compose_ops']} composed ops",
        "composed_300.once_shuffled_s": "  the same read on a once-shuffled view",
        "composed_300.compose_s": f"  composing the {p['compose_ops']} ops",
        "shuffle_20m": f"shuffle of {p['shuffle_rows']:,} rows",
        "g_construct": f"{gtag}: construct",
        "g_contiguous_pass": f"{gtag}: contiguous pass",
        "g_shuffled_pass": f"{gtag}: shuffled pass, 1 thread",
        "g_shuffled_pass_t2": f"{gtag}: shuffled pass, threads=2 readahead=4",
        "g_shuffled_pass_tN": f"{gtag}: shuffled pass, threads=cores",
    }.get(w, w)


ROWS = ["construct", "contiguous_pass", "shuffle_view", "shuffled_pass", "shuffled_pass_t2", "point_reads",
        "random_take", "concat_1000", "composed_300", "composed_300.once_shuffled_s", "composed_300.compose_s",
        "shuffle_20m", "g_construct", "g_contiguous_pass", "g_shuffled_pass", "g_shuffled_pass_t2",
        "g_shuffled_pass_tN"]


def seconds(res, lib, w):
    """Seconds of workload w (or 'w.extra') for lib, or None."""
    key, _, extra = w.partition(".")
    r = res["results"].get(lib, {}).get(key)
    if not r or "error" in r or "skipped" in r:
        return None
    return r.get(extra) if extra else r.get("seconds")


def cell(res, lib, w):
    key = w.partition(".")[0]
    r = res["results"].get(lib, {}).get(key)
    if r is None:
        return "–"
    if "error" in r:
        return "error" if "timed out" not in r["error"] else "timeout"
    if "skipped" in r:
        return "n/a"
    s = seconds(res, lib, w)
    if s is None:
        return "–"
    txt = f"{s:.3g} s" if s >= 0.001 else f"{s * 1e3:.3g} ms"
    if lib == "infinidata":
        if "." not in w and r.get("bytes"):
            txt += f" · {r['bytes'] / s / 1e9:.2f} GB/s"
        elif "." not in w and r.get("rows"):
            txt += f" · {r['rows'] / s / 1e6:.3g} M rows/s"
    else:
        ours = seconds(res, "infinidata", w)
        if ours:
            txt += f" · **{s / ours:.2f}x**"
    return txt


def goals(res):
    """Each goal of issues 4, 5 and 7 with its measured value and PASS/MISS (None: not measured)."""
    S = lambda lib, w: seconds(res, lib, w)  # noqa: E731
    R = res["results"].get("infinidata", {})
    out = []

    def C(lib, w):
        r = res["results"].get(lib, {}).get(w)
        return r.get("cpu_s") if r and "error" not in r else None

    def add(name, value, target, higher_better, unit, note, source, cpu=None):
        ok = None if value is None else (value >= target if higher_better else value <= target)
        out.append({"goal": name, "value": value, "target": target, "op": ">=" if higher_better else "<=",
                    "unit": unit, "result": {True: "PASS", False: "MISS", None: "not measured"}[ok],
                    "note": note, "source": source, "cpu_ratio": cpu})

    def ratio(a, b):
        return a / b if a is not None and b else None

    def cratio(la, lb, w):  # the same ratio in CPU seconds (single-threaded workloads only)
        return ratio(C(la, w), C(lb, w))

    add("contiguous pass vs np.array(mm[i:i+4096])", ratio(S("numpy", "g_contiguous_pass"),
        S("infinidata", "g_contiguous_pass")), 0.9, True, "x", "NumPy time / our time, goal table",
        "issue 5 item 8, issue 7 item 5", cratio("numpy", "infinidata", "g_contiguous_pass"))
    add("shuffled pass, 1 thread, vs mm[perm[i:i+4096]]", ratio(S("numpy", "g_shuffled_pass"),
        S("infinidata", "g_shuffled_pass")), 1.5, True, "x", "NumPy time / our time, goal table",
        "issue 5 item 9, issue 7 item 5", cratio("numpy", "infinidata", "g_shuffled_pass"))
    add("shuffled pass, threads=2 readahead=4, vs mm[perm[i:i+4096]]", ratio(S("numpy", "g_shuffled_pass"),
        S("infinidata", "g_shuffled_pass_t2")), 2.5, True, "x", "NumPy time / our time, goal table",
        "issue 5 item 9, issue 7 item 5")
    rss = [R[w]["anon_peak_mb"] for w in ("g_shuffled_pass", "g_shuffled_pass_t2")
           if w in R and "anon_peak_mb" in R[w]]
    add("anonymous RSS growth during a shuffled pass", max(rss) if rss else None, 64, False, "MB",
        "largest of the 1-thread and threads=2 passes, sampled every 5 ms", "issue 5 item 10")
    add(f"shuffle of {res['params']['shuffle_rows']:,} rows vs np.random.default_rng(s).permutation",
        ratio(S("infinidata", "shuffle_20m"), S("numpy", "shuffle_20m")), 0.5, False, "x",
        "our time / NumPy time", "issue 4 item 3, issue 7 item 5", cratio("infinidata", "numpy", "shuffle_20m"))
    add("reads after 300 composed ops vs a once-shuffled view",
        R.get("composed_300", {}).get("ratio_to_once") if "error" not in R.get("composed_300", {}) else None,
        1.5, False, "x", "our time / our time on the once-shuffled view", "issue 4 item 11, issue 7 item 5")
    add("point reads vs original Infinidata 0.0.1", ratio(S("infinidata-0.0.1", "point_reads"),
        S("infinidata", "point_reads")), 10, True, "x", "their time / our time", "issue 7 item 5",
        cratio("infinidata-0.0.1", "infinidata", "point_reads"))
    add("shuffled pass vs Hugging Face datasets", ratio(S("datasets", "shuffled_pass"),
        S("infinidata", "shuffled_pass")), 20, True, "x", "their time / our time, 1 thread, main table",
        "issue 7 item 5", cratio("datasets", "infinidata", "shuffled_pass"))
    cores = res["machine"].get("cores") or 1
    if cores > 2:
        add(f"shuffled pass, {cores} threads, vs 1 thread", ratio(S("infinidata", "g_shuffled_pass"),
            S("infinidata", "g_shuffled_pass_tN")), 8 if cores >= 16 else cores / 2, True, "x",
            "our 1-thread time / our N-thread time, goal table", "issue 5 item 11")
    return out


def fmt_goal(g):
    v = g["value"]
    if v is None:
        return "–"
    return f"{v:.1f} MB" if g["unit"] == "MB" else f"{v:.2f}x"


def markdown(res):
    p, d, m = res["params"], res.get("data", {}), res["machine"]
    libs = [l for l in NAMES if l in res["results"]]
    L = []
    L.append(f"# infinidata benchmarks ({res['mode']} run, {res['timestamp']})")
    L.append("")
    L.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB, Linux {m['kernel']}, "
             f"Python {m['python']}. infinidata {m['infinidata']} (commit {m['commit']}), NumPy {m['numpy']}"
             + "".join(f", {NAMES[l]} {res['libs'][l]['version']} (NumPy {res['libs'][l]['numpy']})"
                       for l in libs if l not in ("infinidata", "numpy") and res["libs"].get(l)) + ".")
    L.append("")
    L.append(f"Data: main table {p['rows']:,} rows: embedding float32 (512,), label int64, text str "
             f"(mean {d.get('text_mean_chars', 0):.0f} chars): {d.get('main_gb', 0):.2f} GB; goal table "
             f"{p['g_rows']:,} x 128 float32 ({d.get('g_gb', 0):.2f} GB). Every library reads the same "
             f"np.memmap'd .npy files, in its own process, page cache warm. Best of up to {p['repeat']} runs "
             f"(stopping after {p['repeat_budget']:g} s).")
    L.append("")
    loads = [(NAMES[l], res["libs"][l].get("loadavg_start"), res["libs"][l].get("loadavg_end"))
             for l in libs if res["libs"].get(l)]
    L.append(f"Load average (1 min) on this {m['cores']}-core machine at the start / end of each library's run: "
             + ", ".join(f"{n} {a} / {b}" for n, a, b in loads)
             + ". A load above the core count means other processes shared the CPUs and slowed the "
             "figures; the libraries ran one after another, so a ratio can also carry a change of load.")
    L.append("")
    L.append("Seconds (lower is better). In the peers' columns, **Nx** = peer time / infinidata time: "
             "above 1 infinidata is faster.")
    L.append("")
    L.append("| workload | " + " | ".join(NAMES[l] for l in libs) + " |")
    L.append("|---" * (len(libs) + 1) + "|")
    for w in ROWS:
        cells = [cell(res, l, w) for l in libs]
        if all(c in ("–", "n/a") for c in cells):
            continue
        L.append(f"| {label(w, p, d)} | " + " | ".join(cells) + " |")
    for lib, why in res.get("skipped", {}).items():
        L.append("")
        L.append(f"{NAMES.get(lib, lib)} was not run: {why}")
    errs = [(l, w, r["error"]) for l in libs for w, r in res["results"][l].items() if "error" in r]
    if errs:
        L.append("")
        L.append("Errors and time-outs:")
        for l, w, e in errs:
            L.append(f"- {NAMES[l]}, {w}: {e[:300]}")
    L.append("")
    L.append("## Goals")
    L.append("")
    if res["mode"] == "quick":
        L.append("Quick run: sizes of a few MB, so these figures show that the suite runs, not the goals.")
        L.append("")
    L.append("| goal | measured | target | result | how | the same in CPU seconds |")
    L.append("|---|---|---|---|---|---|")
    for g in res["goals"]:
        tgt = f"{g['op']} {g['target']:g}{' MB' if g['unit'] == 'MB' else 'x'}"
        cpu = f"{g['cpu_ratio']:.2f}x" if g.get("cpu_ratio") else ""
        L.append(f"| {g['goal']} ({g['source']}) | {fmt_goal(g)} | {tgt} | **{g['result']}** | {g['note']} | {cpu} |")
    L.append("")
    L.append("PASS/MISS judge the wall-clock ratio. The last column is the same ratio in CPU seconds (all "
             "threads of the worker process, fastest run), given for single-threaded comparisons: on a loaded "
             "machine it shows the cost of each library's own work without the waits other processes cause.")
    L.append("")
    L.append("## Against the machine's limits (the probe, bench/limits.c)")
    L.append("")
    lim = res.get("limits", {})
    if "copy_gbs" not in lim:
        L.append(f"probe not run: {lim.get('skipped', '?')}")
    else:
        L.append("| path | probe | infinidata | fraction |")
        L.append("|---|---|---|---|")
        R = res["results"].get("infinidata", {})

        def gbs(w):
            r = R.get(w)
            return r["bytes"] / r["seconds"] / 1e9 if r and "seconds" in r and r.get("bytes") else None

        def row(name, limit, ours, unit, lower=False):
            if ours is None:
                L.append(f"| {name} | {limit:.2f} {unit} | – | – |")
            else:
                frac = limit / ours if lower else ours / limit
                L.append(f"| {name} | {limit:.2f} {unit} | {ours:.2f} {unit} | {frac:.2f} |")

        row("contiguous copy (goal table, batches of 4096)", lim["copy_gbs"], gbs("g_contiguous_pass"), "GB/s")
        if "gather1_gbs" in lim:
            row("random 512-byte row gather, 1 thread", lim["gather1_gbs"], gbs("g_shuffled_pass"), "GB/s")
        if "gather2_gbs" in lim:
            row("random 512-byte row gather, 2 threads", lim["gather2_gbs"], gbs("g_shuffled_pass_t2"), "GB/s")
        if "shuffle_bucketed_s" in lim and p["shuffle_rows"] == 20_000_000:
            r = R.get("shuffle_20m", {})
            row("shuffle of 20M rows (bucketed C shuffle)", lim["shuffle_bucketed_s"], r.get("seconds"), "s",
                lower=True)
            L.append(f"| shuffle of 20M rows (Fisher-Yates) | {lim['shuffle_fy_s']:.2f} s | | |")
        L.append("")
        L.append("```")
        L.append(lim["raw"])
        L.append("```")
    L.append("")
    L.append("## Memory and disk")
    L.append("")
    L.append("Anonymous RSS peak growth during each workload (MB; RssAnon of the worker process, read by "
             "run.py every 5 ms, so a spike shorter than that can be missed; results a workload returns, such "
             "as the 100,000 rows of a take, count) / disk used by the library's files after it (MB).")
    L.append("")
    L.append("| workload | " + " | ".join(NAMES[l] for l in libs) + " |")
    L.append("|---" * (len(libs) + 1) + "|")
    for w in ROWS:
        if "." in w:
            continue
        cells = []
        for l in libs:
            r = res["results"][l].get(w)
            if not r or "anon_peak_mb" not in r:
                cells.append("–")
            else:
                cells.append(f"{r['anon_peak_mb']:.0f} / {r['disk_mb']:.0f}")
        if all(c == "–" for c in cells):
            continue
        L.append(f"| {label(w, p, d)} | " + " | ".join(cells) + " |")
    L.append("")
    L.append(f"Total run time {res.get('total_s', 0):.0f} s.")
    return "\n".join(L) + "\n"


def chart(res, path):
    """Write a PNG: seconds per workload and library (log scale), and each goal as measured/target.
    Returns True when written; False (CHART_SKIPPED says why) when matplotlib is not there."""
    global CHART_SKIPPED
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as e:
        CHART_SKIPPED = f"matplotlib not importable ({e})"
        return False
    p, d = res["params"], res.get("data", {})
    libs = [l for l in NAMES if l in res["results"]]
    ws = [w for w in ROWS if any(seconds(res, l, w) for l in libs)]
    colors = {"infinidata": "#1f77b4", "numpy": "#7f7f7f", "datasets": "#ff7f0e", "infinidata-0.0.1": "#2ca02c"}
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(11, 0.45 * len(ws) * len(libs) / 2 + 6),
                                  gridspec_kw={"height_ratios": [3, 1]})
    h = 0.8 / max(len(libs), 1)
    for k, l in enumerate(libs):
        ys = [i + k * h for i in range(len(ws))]
        vals = [seconds(res, l, w) or 0 for w in ws]
        ax.barh(ys, vals, height=h, color=colors[l], label=NAMES[l])
    ax.set_yticks([i + h * (len(libs) - 1) / 2 for i in range(len(ws))])
    ax.set_yticklabels([textwrap.fill(label(w, p, d).strip(), 40) for w in ws], fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("seconds (log scale, lower is better)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"infinidata vs peers ({res['mode']} run, {res['machine']['cpu']}, "
                 f"{res['machine']['cores']} cores)", fontsize=9)
    gs = [g for g in res["goals"] if g["value"] is not None]
    score = [(g["value"] / g["target"]) if g["op"] == ">=" else (g["target"] / g["value"] if g["value"] else 0)
             for g in gs]
    ax2.barh(range(len(gs)), score, color=["#2ca02c" if s >= 1 else "#d62728" for s in score])
    ax2.axvline(1.0, color="black", lw=1)
    ax2.set_yticks(range(len(gs)))
    ax2.set_yticklabels([textwrap.fill(f"{g['goal']} ({fmt_goal(g)} vs {g['op']} {g['target']:g})", 40)
                         for g in gs], fontsize=7)
    ax2.invert_yaxis()
    ax2.set_xlabel("goal score: measured / target (>= 1 met)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
