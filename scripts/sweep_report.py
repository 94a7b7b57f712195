#!/usr/bin/env python3
"""The report of a depth sweep (scripts/depth_sweep.sh): one table over seeds, plots, one HTML page.

    sweep_report.py --out DIR --run KIND:DEPTH:SEED:RUN_DIR ... [--analysis PNG_DIR ...] [--recipe TEXT]
                    [--set KEY=VALUE ...]

Reads each run's config.json, summary.json and metrics.csv, groups the runs by (kind, depth) and
writes into DIR:
  summary.csv, summary.md, summary.json  mean ± sample std, min and max over seeds of the final test
                                         and training error (%), next to He et al. 2015, Table 6
  runs.csv                               one row per run: its status, and what it used for each
                                         --set key (from its config.json) and what was changed when
                                         it was resumed (its resume_changes)
  curves/<kind>-<depth>.csv              per evaluation step: mean, min, max over seeds (%)
  training_error.png, test_error.png     He et al. Fig. 6 layout: plain left, ResNets right, the
                                         mean curve and a min-max band per depth (gnuplot)
  report.html                            summary.md with every picture inline (data: URIs), so the
                                         one file can be mailed or opened offline
With --analysis folders, their PNGs, and the numbers of the geometry analyses found there
(landscape.json, hessian.json, paths.json: loss over the grid, top eigenvalues and trace, the
range of path lengths that carries the gradient) as tables.
A run without summary.json is missing, one whose files cannot be read is unreadable (one line on
stderr says why): both are listed as such and left out of the statistics, and the exit status is
then 3 (the other outputs are still written). No run with metrics: no plots (gnuplot is not
called). Exit 1 (one line) when an output cannot be written or gnuplot fails. Standard library only.

Sweep folders are opened, not trusted (docs/safety.md): every file read is a regular file of a
bounded size (a symlink, FIFO or device in a run folder is unreadable, never followed or waited
on), JSON is refused when nested deeper than 64 levels or with a key twice in one object, and
every output is created new (O_EXCL | O_NOFOLLOW, renamed into place): a symlink planted at an
output's name is replaced, never written through, and curves/ must be a folder of the sweep's own.
"""
import argparse
import base64
import csv
import html
import io
import json
import os
import stat
import statistics
import subprocess
import sys

# He et al. 2015, Table 6: CIFAR-10 test error (%) with the paper's recipe (64k iterations,
# batch 128, lr 0.1 divided by 10 at 32k and 48k). ResNet-110 is reported as the best of 5 runs,
# 6.43, with the mean ± std of those runs, 6.61 ± 0.16: our mean is compared with the mean.
TABLE6_RESNET = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
RESNET_110_MEAN_STD = (6.61, 0.16)
PAPER_RESNET = {**TABLE6_RESNET, 110: RESNET_110_MEAN_STD[0]}  # what our mean is compared with
PAPER_NOTE = {110: "6.61 ± 0.16 (mean of 5 runs; best 6.43)"}
PLAIN_NOTE = ("The paper gives the plain nets' errors only as curves (Fig. 6, left), not in a table, "
              "so their paper column is empty.")
KINDS = ("plain", "resnet")


class ReportError(Exception):
    """An output that cannot be made: one line, exit 1."""


JSON_DEPTH = 64            # as util/budgets.h: kJsonDepth
JSON_BYTES = 16 << 20      # kJsonFileBytes
METRICS_BYTES = 64 << 20   # kMetricsFileBytes
IMAGE_BYTES = 64 << 20     # a plot inlined into report.html


def read_bytes(path, limit):
    """The bytes of a regular file of at most `limit` bytes, opened without following a symlink
    and without waiting on a FIFO; OSError (one line) otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == 40:  # ELOOP: the last component is a symlink
            raise OSError(e.errno, "a symlink (refused: nothing in a sweep folder is followed out of it)",
                          path) from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(0, "not a regular file", path)
        if st.st_size > limit:
            raise OSError(0, f"{st.st_size} bytes, more than the {limit} such a file may have", path)
        return f.read(limit + 1)[:limit]


def printable(text, limit=200):
    """`text` for a one-line message: control characters escaped, at most `limit` characters."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)[:limit]


def no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {json.dumps(key)[:60]} appears twice in one object")
        seen[key] = value
    return seen


def check_depth(text, limit=JSON_DEPTH):
    """ValueError when JSON `text` nests deeper than `limit` (json.loads would recurse into it)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                raise ValueError(f"JSON nested deeper than {limit} levels")
        elif ch in "]}":
            depth -= 1


def parse_json(text):
    check_depth(text)
    return json.loads(text, object_pairs_hook=no_duplicates)


def read_json(path):
    return parse_json(read_bytes(path, JSON_BYTES).decode("utf-8"))


def write_file(path, data):
    """`data` (str or bytes) into `path`: a temporary created new beside it (a stale one, or a
    symlink planted under its name, is removed first: never followed), renamed over it."""
    folder, name = os.path.split(path)
    dfd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        tmp = name + ".tmp"
        try:
            os.unlink(tmp, dir_fd=dfd)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd)
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


def own_folder(path):
    """`path` as a folder of the sweep's own (made if missing); ReportError for a symlink or a file."""
    if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
        raise ReportError(f"{path}: is not a folder of the sweep's own (a symlink or a file; refused: nothing "
                          "in a sweep folder is followed out of it)")
    os.makedirs(path, exist_ok=True)


def csv_text(rows):
    out = io.StringIO(newline="")
    w = csv.writer(out)
    for row in rows:
        w.writerow(row)
    return out.getvalue()


def read_curve(path):
    """[(step, train_error %, test_error %)] from a run's metrics.csv (errors stored as fractions)."""
    rows = []
    text = read_bytes(path, METRICS_BYTES).decode("utf-8")
    for r in csv.DictReader(io.StringIO(text, newline="")):
        if r.get("train_error") and r.get("test_error"):
            rows.append((int(r["step"]), 100 * float(r["train_error"]), 100 * float(r["test_error"])))
    return rows


def parse_set(assignment):
    """KEY=VALUE as resnet-train --set reads it: a JSON value, else the bare word as a string."""
    key, _, text = assignment.partition("=")
    try:
        return key, json.loads(text)
    except ValueError:
        return key, text


def lookup(config, key):
    """The value at a dotted key of a config, or KeyError."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def describe_change(c):
    forced = " (--allow-change)" if c.get("forced") else ""
    return (f"step {c.get('step')}: {c.get('key')} {json.dumps(c.get('from'))} -> "
            f"{json.dumps(c.get('to'))}{forced}")


def read_config(run, run_dir, sets):
    """What the run used for each --set key, and its resume_changes, from its config.json."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.lexists(path):
        return None
    config = read_json(path)
    used = {}
    for key, _ in sets:
        try:
            used[key] = lookup(config, key)
        except KeyError:
            used[key] = None
    run.update(used=used, changes=[describe_change(c) for c in config.get("resume_changes", [])
                                   if isinstance(c, dict)])
    return config


def load_run(spec, sets):
    """One run's numbers; a run whose files cannot be read gets `problem` (and is left out)."""
    kind, depth, seed, run_dir = spec.split(":", 3)
    run = {"kind": kind, "depth": int(depth), "seed": int(seed) if seed else None, "run": run_dir,
           "finished": os.path.isfile(os.path.join(run_dir, "summary.json")), "used": {}, "changes": []}
    reading = "config.json"
    try:
        config = read_config(run, run_dir, sets)
        if not run["finished"]:
            return run
        if config is None:
            raise FileNotFoundError("not found")
        reading = "summary.json"
        summary = read_json(os.path.join(run_dir, "summary.json"))
        parameters, steps, final = summary["parameters"], summary["steps"], 100 * summary["final_test_error"]
        reading = "metrics.csv"
        curve = read_curve(os.path.join(run_dir, "metrics.csv"))
        reading = "config.json"
        run.update(seed=config["runtime"]["seed"], iterations=config["train"]["iterations"],
                   batch_size=config["train"]["batch_size"])
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else (
            f"no {e}" if isinstance(e, KeyError) else str(e))
        why = printable(why)
        run.update(finished=False, problem=f"{reading}: {why}")
        print(f"sweep_report.py: {run_dir}: {run['problem']}; left out of the statistics", file=sys.stderr)
        return run
    run.update(parameters=parameters, steps=steps, final_test_error=final,
               final_train_error=curve[-1][1] if curve else None, curve=curve)
    return run


def stats(values):
    """mean, sample std (None for one value), min, max."""
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else None,
            "min": min(values), "max": max(values)}


def summarize(runs):
    groups = []
    depths = sorted({r["depth"] for r in runs})
    for kind in KINDS:
        for depth in depths:
            members = [r for r in runs if r["kind"] == kind and r["depth"] == depth]
            if not members:
                continue
            done = [r for r in members if r["finished"]]
            g = {"model": f"{kind}-{depth}", "kind": kind, "depth": depth, "n": len(done),
                 "seeds": [r["seed"] for r in done], "missing": [r["run"] for r in members if not r["finished"]]}
            if done:
                g.update(parameters=done[0]["parameters"], steps=sorted({r["steps"] for r in done}),
                         test_error=stats([r["final_test_error"] for r in done]))
                trains = [r["final_train_error"] for r in done if r["final_train_error"] is not None]
                g["train_error"] = stats(trains) if trains else None
            paper = PAPER_RESNET.get(depth) if kind == "resnet" else None
            g["paper_test_error"] = paper
            g["difference"] = g["test_error"]["mean"] - paper if paper is not None and done else None
            g["curve"] = mean_curve(done)
            groups.append(g)
    return groups


def mean_curve(done):
    """Per step that every run of the group evaluated: mean, min, max of the training and test error."""
    if not done:
        return []
    by_run = [{s: (tr, te) for s, tr, te in r["curve"]} for r in done]
    steps = sorted(set.intersection(*(set(c) for c in by_run)))
    out = []
    for s in steps:
        tr = [c[s][0] for c in by_run]
        te = [c[s][1] for c in by_run]
        out.append((s, statistics.mean(tr), min(tr), max(tr), statistics.mean(te), min(te), max(te)))
    return out


def pct(x):
    return "" if x is None else f"{x:.2f}"


def mean_std(s):
    if s is None:
        return "—"
    return f"{s['mean']:.2f} ± {s['std']:.2f}" if s["std"] is not None else f"{s['mean']:.2f} ± —"


def min_max(s):
    return "—" if s is None else f"{s['min']:.2f} – {s['max']:.2f}"


def status(r):
    if r["finished"]:
        return "finished"
    return f"unreadable ({r['problem']})" if "problem" in r else "missing"


def shown(value):
    return "—" if value is None else value if isinstance(value, str) else json.dumps(value)


def used_cell(r, key, wanted):
    """What run r used for a --set key; when it is not what this sweep asks for, both."""
    if key not in r["used"]:
        return "—"
    got = r["used"][key]
    return shown(got) if got == wanted else f"{shown(got)} (this sweep: {shown(wanted)})"


def write_csvs(out, groups, runs, sets):
    rows = [["model", "kind", "depth", "parameters", "steps", "seeds",
             "test_error_mean_pct", "test_error_std_pct", "test_error_min_pct", "test_error_max_pct",
             "train_error_mean_pct", "train_error_std_pct", "train_error_min_pct", "train_error_max_pct",
             "paper_test_error_pct", "difference_pct"]]
    for g in groups:
        te, tr = g.get("test_error") or {}, g.get("train_error") or {}
        rows.append([g["model"], g["kind"], g["depth"], g.get("parameters", ""),
                     "/".join(map(str, g.get("steps", []))), g["n"],
                     pct(te.get("mean")), pct(te.get("std")), pct(te.get("min")), pct(te.get("max")),
                     pct(tr.get("mean")), pct(tr.get("std")), pct(tr.get("min")), pct(tr.get("max")),
                     pct(g["paper_test_error"]), pct(g["difference"])])
    write_file(os.path.join(out, "summary.csv"), csv_text(rows))
    rows = [["model", "kind", "depth", "seed", "run", "finished", "parameters", "steps",
             "final_train_error_pct", "final_test_error_pct", "status"] + [k for k, _ in sets] + ["resume_changes"]]
    for r in runs:
        rows.append([f"{r['kind']}-{r['depth']}", r["kind"], r["depth"], "" if r["seed"] is None else r["seed"],
                     r["run"], int(r["finished"]), r.get("parameters", ""), r.get("steps", ""),
                     pct(r.get("final_train_error")), pct(r.get("final_test_error")), status(r)] +
                    ["" if k not in r["used"] else json.dumps(r["used"][k]) for k, _ in sets] +
                    ["; ".join(r["changes"])])
    write_file(os.path.join(out, "runs.csv"), csv_text(rows))
    own_folder(os.path.join(out, "curves"))
    for g in groups:
        rows = [["step", "train_mean", "train_min", "train_max", "test_mean", "test_min", "test_max"]]
        rows += [[row[0]] + [f"{v:.4f}" for v in row[1:]] for row in g["curve"]]
        write_file(os.path.join(out, "curves", g["model"] + ".csv"), csv_text(rows))


def write_json(out, groups, runs):
    doc = {"paper": {"source": "He et al. 2015, Table 6 (CIFAR-10 test error %)",
                     "resnet": TABLE6_RESNET, "resnet_110_mean": RESNET_110_MEAN_STD[0],
                     "resnet_110_std": RESNET_110_MEAN_STD[1],
                     "compared_with": "Table 6; for ResNet-110 the mean of its 5 runs",
                     "plain": None, "plain_note": PLAIN_NOTE},
           "groups": [{k: v for k, v in g.items() if k != "curve"} for g in groups],
           "runs": [{k: v for k, v in r.items() if k != "curve"} for r in runs]}
    write_file(os.path.join(out, "summary.json"), json.dumps(doc, indent=2) + "\n")


def plot(out, groups, column, what):
    """He et al. Fig. 6 layout: plain nets left, ResNets right; per depth a min-max band and the mean.
    None when no run has a curve (gnuplot is not called; an old picture is removed)."""
    png, gp = os.path.join(out, f"{what}_error.png"), os.path.join(out, f"{what}_error.gp")
    if not any(g["curve"] for g in groups):
        for f in (png, gp):
            if os.path.lexists(f):
                os.remove(f)
        return None
    lo = {"train": 3, "test": 6}[column]
    lines = ["set terminal pngcairo size 1400,540 noenhanced font 'Sans,11'", f"set output '{png}'",
             "set datafile separator ','", "set grid; set key top right box opaque",
             f"set multiplot layout 1,2 title '{what} error vs iterations (He et al. 2015, Fig. 6): "
             "mean over seeds, band = min to max' font 'Sans,14'"]
    for kind in KINDS:
        mine = [g for g in groups if g["kind"] == kind and g["curve"]]
        lines += [f"set title '{'plain networks' if kind == 'plain' else 'ResNets'}'",
                  f"set xlabel 'iterations'; set ylabel '{what} error (%)'; set yrange [0:*]"]
        items = []
        for i, g in enumerate(mine, start=1):
            data = os.path.join(out, "curves", g["model"] + ".csv")
            items.append(f"'{data}' skip 1 using 1:{lo}:{lo + 1} with filledcurves "
                         f"fs transparent solid 0.2 noborder lc {i} notitle")
            items.append(f"'{data}' skip 1 using 1:{lo - 1} with linespoints lw 2 lc {i} "
                         f"title '{g['model']} (n={g['n']})'")
        # An empty panel still needs a plot command for the layout to stay plain-left, ResNet-right.
        lines.append("plot " + ", ".join(items) if items else "plot [0:1] NaN notitle")
    lines.append("unset multiplot")
    write_file(gp, "\n".join(lines) + "\n")
    if os.path.lexists(png):  # gnuplot opens it by name: whatever is there goes, it is made new
        os.remove(png)
    try:
        done = subprocess.run(["gnuplot", gp], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise ReportError(f"gnuplot: {e.strerror}")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise ReportError(f"gnuplot failed on {gp} (exit {done.returncode}): {last}")
    return os.path.basename(png)


def geometry_blocks(dirs):
    """Tables of the numbers of resnet-analyze landscape / hessian / paths (their JSON), if any."""
    out = []
    for d in dirs:
        for name, render in (("landscape.json", landscape_rows), ("hessian.json", hessian_rows),
                             ("paths.json", paths_rows)):
            path = os.path.join(d, name)
            if not os.path.lexists(path):
                continue
            try:
                out += render(read_json(path))
            except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
                print(f"sweep_report.py: {path}: unreadable ({printable(str(e))})", file=sys.stderr)
                out.append(("p", f"{path}: unreadable"))
    return out


def fmt_g(x):
    return "—" if x is None else f"{x:.4g}"


def landscape_rows(j):
    rows = []
    for s in j["subjects"]:
        flat = [v for row in (s["loss"] if j["kind"] == "surface" else [s["loss"]]) for v in row]
        n = len(s["axis"])
        centre = s["loss"][n // 2][n // 2] if j["kind"] == "surface" else s["loss"][n // 2]
        rows.append([s["label"], fmt_g(centre), fmt_g(s.get("min_loss")), fmt_g(s.get("max_loss")),
                     str(sum(v is None for v in flat))])
    return [("h2", "Loss landscape (Li et al. 2018)"),
            ("p", f"Training loss on a {j['grid']}×{j['grid'] if j['kind'] == 'surface' else 1} grid of "
                  f"filter-normalised directions (range ±{j['range']}, seed {j['seed']}) on the first "
                  f"{j['images']['first']} {j['images']['split']} images, BN in eval mode."),
            ("table", (["model", "loss at the centre", "min over the grid", "max over the grid", "non-finite"],
                       rows))]


def hessian_rows(j):
    rows = []
    for s in j["subjects"]:
        t = s.get("trace")
        rows.append([s["label"], f"{s['parameters']:,}", ", ".join(fmt_g(v) for v in s["top_eigenvalues"]),
                     f"{t['estimate']:.4g} ± {t['standard_error']:.2g}" if t else "—"])
    return [("h2", "Curvature: the Hessian (PyHessian's measures)"),
            ("p", f"Mean cross-entropy on the first {j['images']['first']} {j['images']['split']} images, BN in "
                  f"eval mode, fp32: top eigenvalues by power iteration, trace by Hutchinson ({j['probes']} "
                  "probes, ± standard error)."),
            ("table", (["model", "parameters", "top eigenvalues", "trace"], rows))]


def paths_rows(j):
    rows = []
    for s in j["subjects"]:
        e = s["effective"]
        total = sum(l["total"] for l in s["lengths"]) or 1.0
        mean_k = sum(l["k"] * l["total"] for l in s["lengths"]) / total
        rows.append([s["label"], str(s["blocks"]), f"{e['lo']}–{e['hi']}", f"{100 * e['share']:.0f}",
                     f"{mean_k:.1f}"])
    return [("h2", "The paths gradients take (Veit et al. 2016, Fig. 6)"),
            ("p", f"|dL/dx| at the first block along one path of length k ({j['samples']} samples per k), times "
                  f"the C(n, k) paths of that length: the shortest range of lengths that carries "
                  f"{100 * j['mass']:.0f} % of the gradient."),
            ("table", (["model", "blocks n", "effective path lengths", "% of the gradient", "mean length"], rows))]


def blocks(groups, runs, images, recipe, sets, geometry=()):
    """The report as a list of blocks that both summary.md and report.html render."""
    done = [r for r in runs if r["finished"]]
    seeds = sorted({r["seed"] for r in done if r["seed"] is not None})
    iters = sorted({r["iterations"] for r in done})
    batches = sorted({r["batch_size"] for r in done})
    b = [("h1", "Depth sweep: plain vs residual networks on CIFAR-10"),
         ("p", f"{len(done)} finished runs of {len(runs)}; seeds {', '.join(map(str, seeds)) or '—'}; "
               f"{'/'.join(map(str, iters)) or '—'} iterations at batch {'/'.join(map(str, batches)) or '—'} "
               "(the paper: 64,000 at batch 128). Errors in %: mean ± sample std over seeds (— for one seed), "
               "min – max, final evaluation of each run.")]
    if recipe:
        b.append(("p", f"Recipe: {recipe}"))
    header = ["model", "parameters", "steps", "seeds", "test error", "test min – max", "training error",
              "training min – max", "paper test error", "difference"]
    rows = []
    for g in groups:
        paper = PAPER_NOTE.get(g["depth"], pct(g["paper_test_error"])) if g["kind"] == "resnet" else ""
        diff = g["difference"]
        rows.append([g["model"], f"{g['parameters']:,}" if "parameters" in g else "—",
                     "/".join(map(str, g.get("steps", []))) or "—", str(g["n"]),
                     mean_std(g.get("test_error")), min_max(g.get("test_error")),
                     mean_std(g.get("train_error")), min_max(g.get("train_error")),
                     paper or "—", "—" if diff is None else f"{diff:+.2f}"])
    b.append(("table", (header, rows)))
    b.append(("p", "Paper: He et al. 2015, Table 6 (ResNet-20/32/44/56/110/1202: 8.75/7.51/7.17/6.97/6.43/7.93 "
                   "with the full recipe); difference = our mean − the paper's. " + PLAIN_NOTE))
    missing = [r["run"] for r in runs if not r["finished"] and "problem" not in r]
    if missing:
        b.append(("p", f"Missing (no summary.json; re-run the sweep to resume them): {', '.join(missing)}"))
    unreadable = [f"{r['run']} ({r['problem']})" for r in runs if "problem" in r]
    if unreadable:
        b.append(("p", f"Unreadable (left out of the statistics): {', '.join(unreadable)}"))
    b += runs_blocks(runs, sets)
    if not any(g["curve"] for g in groups):
        b.append(("p", "No plots: no run has evaluated yet (no metrics)."))
    b += list(geometry)
    for title, rel in images:
        b.append(("img", (title, rel)))
    return b


def runs_blocks(runs, sets):
    """Per run: its status, what it used for each --set key (config.json) and its resume changes."""
    header = ["run", "status", "seed", "steps"] + [k for k, _ in sets] + ["changed on resume"]
    rows = [[os.path.basename(r["run"]), status(r), shown(r["seed"]), shown(r.get("steps"))] +
            [used_cell(r, k, v) for k, v in sets] + ["; ".join(r["changes"]) or "—"] for r in runs]
    return [("h2", "Runs"),
            ("p", "What each run used, from its config.json: the value of each --set key of this sweep, "
                  "and what was changed when it was resumed (resume_changes)."),
            ("table", (header, rows))]


def render_md(bl):
    out = []
    for kind, x in bl:
        if kind == "h1":
            out.append(f"# {x}")
        elif kind == "h2":
            out.append(f"## {x}")
        elif kind == "p":
            out.append(x)
        elif kind == "table":
            header, rows = x
            out.append("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
            out[-1] += "".join("\n| " + " | ".join(r) + " |" for r in rows)
        elif kind == "img":
            out.append(f"![{x[0]}]({x[1]})")
    return "\n\n".join(out) + "\n"


def render_html(bl, out_dir):
    e = html.escape
    body = []
    for kind, x in bl:
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{e(x)}</{kind}>")
        elif kind == "table":
            header, rows = x
            body.append("<table>\n<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>\n" +
                        "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>\n" for r in rows) +
                        "</table>")
        elif kind == "img":
            data = base64.b64encode(read_bytes(os.path.join(out_dir, x[1]), IMAGE_BYTES)).decode("ascii")
            body.append(f'<figure><img alt="{e(x[0])}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{e(x[0])} ({e(x[1])})</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:1450px;margin:1em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}"
             "td:first-child,th{text-align:left}img{max-width:100%}figure{margin:1em 0}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
            f"<title>{e(bl[0][1])}</title><style>{style}</style></head>\n<body>\n" + "\n".join(body) +
            "\n</body>\n</html>\n")


def report(a):
    sets = [parse_set(x) for x in a.sets]
    runs = [load_run(s, sets) for s in a.run]
    groups = summarize(runs)
    write_csvs(a.out, groups, runs, sets)
    write_json(a.out, groups, runs)
    images = []
    for column, what in (("train", "training"), ("test", "test")):
        png = plot(a.out, groups, column, what)
        if png:
            images.append((f"{what} error (Fig. 6)", png))
    for d in a.analysis:
        for name in sorted(os.listdir(d)):
            if name.endswith(".png"):
                rel = os.path.relpath(os.path.join(d, name), a.out)
                images.append((f"resnet-analyze {os.path.basename(d)}: {name}", rel))
    bl = blocks(groups, runs, images, a.recipe, sets, geometry_blocks(a.analysis))
    write_file(os.path.join(a.out, "summary.md"), render_md(bl))
    write_file(os.path.join(a.out, "report.html"), render_html(bl, a.out))
    return 3 if any(not r["finished"] for r in runs) else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--run", action="append", default=[], help="KIND:DEPTH:SEED:RUN_DIR (SEED may be empty)")
    ap.add_argument("--analysis", action="append", default=[], help="a folder of resnet-analyze PNGs")
    ap.add_argument("--recipe", default="", help="how the runs were made, for the report's first lines")
    ap.add_argument("--set", action="append", default=[], dest="sets",
                    help="KEY=VALUE: the sweep's --set; the report shows what each run used for KEY")
    a = ap.parse_args()
    try:
        return report(a)
    except ReportError as e:
        print(f"sweep_report.py: {e}", file=sys.stderr)
    except OSError as e:
        print(f"sweep_report.py: {e.filename or a.out}: {e.strerror}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
