"""PII detection: accuracy per entity type and speed on 1 KB prompts, Bastion vs Presidio.

    uv sync --group bench
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        uv run --group bench python bench/pii.py [--quick] [--runs 5]

Accuracy: ``../shared/data/pii/synth_dataset_v2.json`` (1,500 labelled sentences from
presidio-research), and the set generated in the repository
(``tests/privacy/data/generated_pii.json``: other templates, eight Faker locales, text
pasted with escaped line breaks, Unicode spaces and zero-width characters). A predicted
span counts as correct when it overlaps a labelled span of the same type (the
exact-boundary figures are written to the JSON too). LOCATION is scored as
presidio-research scores Presidio: the dataset's GPE and STREET_ADDRESS spans
are both LOCATION, and so are Bastion's STREET_ADDRESS findings; STREET_ADDRESS is then
scored alone as well. Types outside those scored here are ignored on both sides.

Speed: the same sentences joined into prompts of about 1 KB; each engine analyses every
prompt in turn, several rounds; p50/p99 are per prompt, throughput is prompts per second
on one core, by wall clock and by this thread's CPU time. Each engine is timed in
``--runs`` fresh processes, Bastion and Presidio alternating; the figures are medians.
Presidio runs with regex recognizers only: a no-op NLP engine (its default engine
downloads ``en_core_web_lg``) and an e-mail recognizer whose ``tldextract`` never fetches
the suffix list. It is asked only for the types it is scored on; Bastion runs its full
default set (national identifiers and PERSON included) plus LOCATION and STREET_ADDRESS.

Seconds move with what else runs on these shared machines (the same process took 30 %
longer or shorter from one minute to the next), so where valgrind is installed the
engines' machine instructions per prompt are counted as well (callgrind; the same count
on every run): a ratio that the machine's load does not move. Instructions are not time
(the engines retire them at different rates), so both are reported.

Writes ``bench/results/pii.json``. Skips with a message where ``../shared`` is absent.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
#: ``../shared/data`` beside the project, or where BASTION_TEST_SHARED_DATA says (a worktree).
DATA = (
    Path(os.environ.get("BASTION_TEST_SHARED_DATA") or ROOT.parent / "shared" / "data")
    / "pii"
    / "synth_dataset_v2.json"
)
#: The set generated in the repository (own templates, Faker locales, escaped and Unicode
#: whitespace; tests/privacy/data/make_generated.py): accuracy only.
GENERATED = ROOT / "tests" / "privacy" / "data" / "generated_pii.json"
RESULTS = ROOT / "bench" / "results" / "pii.json"

STRUCTURED = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "US_SSN",
    "IP_ADDRESS",
)
#: Each row of the table: the labelled types it counts, and the predicted types.
ROWS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    **{t: (frozenset({t}), frozenset({t})) for t in (*STRUCTURED, "PERSON")},
    "LOCATION": (
        frozenset({"GPE", "STREET_ADDRESS"}),
        frozenset({"LOCATION", "STREET_ADDRESS"}),
    ),
    "STREET_ADDRESS": (frozenset({"STREET_ADDRESS"}), frozenset({"STREET_ADDRESS"})),
}
SCORED = tuple(ROWS)
BASTION = "bastion"
#: Bastion asked for Presidio's types only (and STREET_ADDRESS, its half of LOCATION):
#: the like-for-like speed comparison. "bastion" runs what a policy would switch on.
BASTION_SAME = "bastion (Presidio's types)"
PRESIDIO = "presidio (regex only)"
ENGINES = (BASTION, BASTION_SAME, PRESIDIO)
PRESIDIO_TYPES = (*STRUCTURED, "PERSON", "LOCATION")

Spans = list[tuple[str, int, int]]
Detector = Callable[[str], Spans]


# --- engines -----------------------------------------------------------------------


def bastion_entities(same_as_presidio: bool = False) -> list[str]:
    from bastion.privacy import DEFAULT_ENTITIES

    if same_as_presidio:
        return sorted({*PRESIDIO_TYPES, "STREET_ADDRESS"})
    return sorted({*DEFAULT_ENTITIES, "LOCATION", "STREET_ADDRESS"})


def compiled_detectors() -> dict[str, bool]:
    from bastion.privacy import _native

    return _native.compiled()


def bastion_detector(same_as_presidio: bool = False) -> Detector:
    from bastion.privacy import Analyzer

    analyzer = Analyzer(bastion_entities(same_as_presidio))
    analyzer.warm()

    def detect(text: str) -> Spans:
        return [(s.entity_type, s.start, s.end) for s in analyzer.analyze(text)]

    return detect


def presidio_detector() -> Detector | None:
    try:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
        from presidio_analyzer.predefined_recognizers import EmailRecognizer
    except ImportError:
        return None

    extract = tldextract.TLDExtract(suffix_list_urls=())

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        def validate_result(self, pattern_text: str) -> bool:
            return bool(extract(pattern_text).fqdn)

    class NoOpNlpEngine(NlpEngine):  # type: ignore[misc]
        def load(self) -> None:
            pass

        def is_loaded(self) -> bool:
            return True

        def process_text(self, text: str, language: str) -> Any:
            return NlpArtifacts([], [], [], [], self, language)

        def process_batch(self, texts: Any, language: str, **kw: Any) -> Any:
            for text in texts:
                yield text, self.process_text(text, language)

        def is_stopword(self, word: str, language: str) -> bool:
            return False

        def is_punct(self, word: str, language: str) -> bool:
            return False

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    nlp = NoOpNlpEngine()
    registry = RecognizerRegistry()
    registry.load_predefined_recognizers(nlp_engine=nlp, languages=["en"])
    registry.remove_recognizer("EmailRecognizer")
    registry.remove_recognizer("SpacyRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer())
    engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])
    entities = sorted(set(PRESIDIO_TYPES) & set(engine.get_supported_entities("en")))

    def detect(text: str) -> Spans:
        results = engine.analyze(text, language="en", entities=entities)
        return [(r.entity_type, r.start, r.end) for r in results]

    return detect


# --- accuracy ----------------------------------------------------------------------


def score(records: Sequence[dict[str, Any]], detect: Detector) -> dict[str, dict[str, float]]:
    counts = {t: {"tp_p": 0, "pred": 0, "tp_r": 0, "gold": 0, "exact": 0} for t in ROWS}
    for record in records:
        text = record["full_text"]
        labelled = [
            (s["entity_type"], s["start_position"], s["end_position"]) for s in record["spans"]
        ]
        found = detect(text)
        for row, (gold_types, pred_types) in ROWS.items():
            gold = [(s, e) for t, s, e in labelled if t in gold_types]
            pred = [(s, e) for t, s, e in found if t in pred_types]
            c = counts[row]
            for s, e in pred:
                c["pred"] += 1
                c["tp_p"] += any(gs < e and s < ge for gs, ge in gold)
                c["exact"] += (s, e) in gold
            for s, e in gold:
                c["gold"] += 1
                c["tp_r"] += any(ps < e and s < pe for ps, pe in pred)
    out: dict[str, dict[str, float]] = {}
    for t, c in counts.items():
        p = c["tp_p"] / c["pred"] if c["pred"] else 0.0
        r = c["tp_r"] / c["gold"] if c["gold"] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        ep = c["exact"] / c["pred"] if c["pred"] else 0.0
        er = c["exact"] / c["gold"] if c["gold"] else 0.0
        ef = 2 * ep * er / (ep + er) if ep + er else 0.0
        out[t] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "exact_f1": ef,
            "predicted": c["pred"],
            "labelled": c["gold"],
        }
    return out


# --- speed -------------------------------------------------------------------------


def prompts_1kb(records: Sequence[dict[str, Any]], size: int = 1024) -> list[str]:
    prompts, current = [], ""
    for record in records:
        current = f"{current} {record['full_text']}" if current else record["full_text"]
        if len(current) >= size:
            prompts.append(current[:size])
            current = ""
    return prompts


def speed(prompts: Sequence[str], detect: Detector, rounds: int) -> dict[str, float]:
    """Per-prompt wall time, and CPU time of this thread (which a busy machine's other
    processes do not inflate: this benchmark often shares two cores with test runs)."""
    for text in prompts[:20]:
        detect(text)
    gc.collect()
    gc.freeze()  # a long-running gateway's steady state: start-up objects are not rescanned
    wall: list[float] = []
    cpu: list[float] = []
    start, start_cpu = time.perf_counter(), time.thread_time()
    for _ in range(rounds):
        for text in prompts:
            t0, c0 = time.perf_counter(), time.thread_time()
            detect(text)
            cpu.append(time.thread_time() - c0)
            wall.append(time.perf_counter() - t0)
    total, total_cpu = time.perf_counter() - start, time.thread_time() - start_cpu
    gc.unfreeze()
    wall.sort()
    cpu.sort()

    def p99(xs: list[float]) -> float:
        return xs[min(len(xs) - 1, int(len(xs) * 0.99))] * 1e3

    return {
        "prompts": len(wall),
        "throughput_per_s": len(wall) / total,
        "throughput_per_cpu_s": len(cpu) / total_cpu,
        "p50_ms": statistics.median(wall) * 1e3,
        "p99_ms": p99(wall),
        "cpu_p50_ms": statistics.median(cpu) * 1e3,
        "cpu_p99_ms": p99(cpu),
    }


# --- report ------------------------------------------------------------------------


def detector(name: str) -> Detector | None:
    if name == PRESIDIO:
        return presidio_detector()
    return bastion_detector(same_as_presidio=name == BASTION_SAME)


def timed_in_fresh_process(name: str, rounds: int) -> dict[str, float]:
    """One engine's speed, measured in a new Python process (no warm caches shared
    with the other engine, no garbage from the accuracy pass)."""
    out = subprocess.run(
        [sys.executable, __file__, "--speed-of", name, "--rounds", str(rounds)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def instructions_per_prompt(name: str, prompts: int) -> float | None:
    """Machine instructions per prompt (valgrind's callgrind), which, unlike seconds,
    do not move with what else the machine runs. The child starts with instrumentation
    off (loading the engine and its lists under full instrumentation took over ten
    minutes on a busy machine), warms up, and waits; ``callgrind_control`` switches
    instrumentation on for the analysis rounds alone and off again, so the count is the
    analysis and nothing else."""
    valgrind, control = shutil.which("valgrind"), shutil.which("callgrind_control")
    if valgrind is None or control is None:
        return None
    rounds = 1 if name == PRESIDIO else 2
    proc = subprocess.Popen(
        [
            valgrind,
            "--tool=callgrind",
            "--instr-atstart=no",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--count-of",
            name,
            "--rounds",
            str(rounds),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None

    def instrument(on: bool) -> None:
        subprocess.run(
            [control, "-i", "on" if on else "off", str(proc.pid)],
            capture_output=True,
            check=False,
        )

    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        return None
    instrument(True)
    proc.stdin.write("go\n")
    proc.stdin.flush()
    done = proc.stdout.readline().strip() == "done"
    instrument(False)
    proc.stdin.write("end\n")
    proc.stdin.flush()
    _, err = proc.communicate()
    m = re.search(r"Collected : (\d+)", err)
    if not done or proc.returncode != 0 or m is None:
        return None
    return int(m.group(1)) / (rounds * prompts)


def medians(runs: list[dict[str, float]]) -> dict[str, Any]:
    keys = runs[0].keys()
    merged: dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    merged["runs"] = len(runs)
    merged["each_run"] = runs
    return merged


def main(argv: Sequence[str] | None = None) -> int:
    from bastion.privacy._native import install_guard

    install_guard()  # as the server does: a detector edited since the build runs as source
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run, fewer rounds, no Presidio")
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per engine")
    parser.add_argument("--rounds", type=int, default=10, help="speed rounds for Bastion")
    parser.add_argument("--presidio-rounds", type=int, default=2, help="speed rounds for Presidio")
    parser.add_argument(
        "--no-instructions", action="store_true", help="skip the instruction counts (valgrind)"
    )
    parser.add_argument("--speed-of", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--count-of", choices=ENGINES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if not DATA.is_file():
        print(f"bench/pii.py: skipped: {DATA} is absent (the dataset lives beside the project)")
        return 0
    records = json.loads(DATA.read_text(encoding="utf-8"))
    prompts = prompts_1kb(records)

    if args.count_of:  # a child process under callgrind: warm up, then analyse
        detect = detector(args.count_of)
        assert detect is not None
        for text in prompts[:20]:
            detect(text)
        # Instrumentation goes on between "ready" and "done" (instructions_per_prompt).
        print("ready", flush=True)
        sys.stdin.readline()
        for _ in range(args.rounds):
            for text in prompts:
                detect(text)
        print("done", flush=True)
        sys.stdin.readline()
        return 0
    if args.speed_of:  # a child process: time one engine, print one JSON line
        detect = detector(args.speed_of)
        assert detect is not None
        print(json.dumps(speed(prompts, detect, args.rounds)))
        return 0

    engines: dict[str, Detector] = {BASTION: bastion_detector()}
    if not args.quick:
        engines[BASTION_SAME] = bastion_detector(same_as_presidio=True)
        presidio = presidio_detector()
        if presidio is None:
            print("presidio-analyzer is not installed: run `uv sync --group bench` to compare")
        else:
            engines[PRESIDIO] = presidio

    results: dict[str, Any] = {
        "dataset": "shared/data/pii/" + DATA.name,
        "sentences": len(records),
        "prompt_bytes": 1024,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        # Whether the detectors ran as built (mypyc-compiled, see hatch_build.py).
        "bastion_compiled": compiled_detectors(),
        "matching": "overlap, same type; LOCATION: GPE or STREET_ADDRESS (presidio-research's map)",
        "entities_asked": {
            BASTION: bastion_entities(),
            BASTION_SAME: bastion_entities(same_as_presidio=True),
            PRESIDIO: list(PRESIDIO_TYPES),
        },
        "engines": {},
    }
    generated = json.loads(GENERATED.read_text(encoding="utf-8"))
    results["generated_dataset"] = str(GENERATED.relative_to(ROOT))
    results["generated_sentences"] = len(generated)
    for name, detect in engines.items():
        results["engines"][name] = {
            "accuracy": score(records, detect),
            "accuracy_generated": score(generated, detect),
        }
    if args.quick:
        results["engines"][BASTION]["speed"] = speed(prompts, engines[BASTION], 1)
    else:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in engines}
        for _ in range(args.runs):  # alternate A and B, each in a fresh process
            for name in engines:
                rounds = args.presidio_rounds if name == PRESIDIO else args.rounds
                runs[name].append(timed_in_fresh_process(name, rounds))
        for name in engines:
            results["engines"][name]["speed"] = medians(runs[name])

    if PRESIDIO in engines and not args.quick:
        b = results["engines"][PRESIDIO]["speed"]
        results["ratios_over_presidio"] = {
            name: {
                "throughput_wall": a["throughput_per_s"] / b["throughput_per_s"],
                "throughput_cpu": a["throughput_per_cpu_s"] / b["throughput_per_cpu_s"],
                "p50_wall": b["p50_ms"] / a["p50_ms"],
                "p50_cpu": b["cpu_p50_ms"] / a["cpu_p50_ms"],
                "p99_wall": b["p99_ms"] / a["p99_ms"],
                "p99_cpu": b["cpu_p99_ms"] / a["cpu_p99_ms"],
            }
            for name in (BASTION, BASTION_SAME)
            for a in [results["engines"][name]["speed"]]
        }
    if PRESIDIO in engines and not args.quick and not args.no_instructions:
        counts = {name: instructions_per_prompt(name, len(prompts)) for name in engines}
        if all(c is not None for c in counts.values()):
            results["instructions_per_prompt"] = counts
            results["instruction_ratios_over_presidio"] = {
                name: counts[PRESIDIO] / counts[name]  # type: ignore[operator]
                for name in (BASTION, BASTION_SAME)
            }
    render(results)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


def render(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    engines = results["engines"]
    for key, title in (
        ("accuracy", f"{results['sentences']} labelled sentences"),
        ("accuracy_generated", f"{results.get('generated_sentences')} generated sentences"),
    ):
        if not all(key in engines[name] for name in engines):
            continue
        table = Table(title=f"PII detection on {title} (P / R / F1)")
        table.add_column("entity")
        for name in engines:
            table.add_column(name, justify="right")
        for t in SCORED:
            row = [t]
            for name in engines:
                a = engines[name][key][t]
                row.append(f"{a['precision']:.3f} / {a['recall']:.3f} / {a['f1']:.3f}")
            table.add_row(*row)
        console.print(table)
    speed_table = Table(title=f"Speed on {results['prompt_bytes']}-character prompts, one core")
    for col in ("engine", "prompts/s", "p50 ms", "p99 ms", "prompts/CPU-s", "CPU p50", "CPU p99"):
        speed_table.add_column(col, justify="right")
    for name, r in engines.items():
        s = r["speed"]
        speed_table.add_row(
            name,
            f"{s['throughput_per_s']:.0f}",
            f"{s['p50_ms']:.3f}",
            f"{s['p99_ms']:.3f}",
            f"{s['throughput_per_cpu_s']:.0f}",
            f"{s['cpu_p50_ms']:.3f}",
            f"{s['cpu_p99_ms']:.3f}",
        )
    console.print(speed_table)
    runs = engines[BASTION]["speed"].get("runs", 1)
    for name, ratios in results.get("ratios_over_presidio", {}).items():
        console.print(
            f"{name} / presidio (medians of {runs} runs): throughput "
            f"{ratios['throughput_wall']:.1f}x wall, {ratios['throughput_cpu']:.1f}x CPU; "
            f"p50 {ratios['p50_wall']:.1f}x wall, {ratios['p50_cpu']:.1f}x CPU"
        )
    counts = results.get("instructions_per_prompt")
    if counts:
        console.print(
            "machine instructions per prompt (callgrind; does not move with the machine's "
            "load): "
            + ", ".join(f"{name} {n / 1e6:.2f} M" for name, n in counts.items())
            + "; Presidio / Bastion: "
            + ", ".join(
                f"{name} {r:.1f}x"
                for name, r in results["instruction_ratios_over_presidio"].items()
            )
        )


if __name__ == "__main__":
    sys.exit(main())
