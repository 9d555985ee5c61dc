"""`cosa-edge bench`: engines side by side, the streaming pipeline, or a Triton server under load."""

from __future__ import annotations

from pathlib import Path

import click

from ..backends import TORCH
from ..errors import CosaEdgeError
from .app import cli
from .options import overwrite_option


@cli.command()
@click.option("--engine", "engines", multiple=True, type=click.Path(dir_okay=False),
              help="Engine to measure; repeat to compare several in one run. With --server: the served engine, "
              "measured locally too, for comparison.")
@click.option("--server", help="Load-test a Triton server instead (HOST:PORT, its gRPC endpoint): throughput and "
              "latency percentiles at each --concurrency, every request counted as answered or failed.")
@click.option("--model", "model_name", default="cosa_edge", show_default=True, help="The model's name on --server.")
@click.option("--concurrency", default="1,4,16", show_default=True,
              help="With --server: comma-separated numbers of requests kept in flight.")
@click.option("--tls-ca", type=click.Path(dir_okay=False),
              help="With --server: PEM certificate authority of a TLS server.")
@click.option("--baseline", type=click.Path(dir_okay=False),
              help="Checkpoint (.pt) measured as PyTorch eager FP32; ratios are against it.")
@click.option("--report", "report_dir", required=True, type=click.Path(file_okay=False), help="Folder for the report.")
@click.option("--batch", "batches", default="1", show_default=True, help="Comma-separated batch sizes, e.g. 1,4,8.")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True)
@click.option("--iterations", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--duration", type=click.FloatRange(min=0.1), help="Seconds per measurement instead of --iterations.")
@click.option("--video", help="Also measure the streaming pipeline on this video: end-to-end frames/s and latency, "
              "against the first engine alone over as many frames, the two taking turns in --rounds rounds.")
@click.option("--annotated-video/--no-annotated-video", default=True, show_default=True,
              help="With --video: the pipeline also draws and encodes the annotated video, as `infer --out` does; "
              "--no-annotated-video measures it writing the JSONL results only, as a headless deployment runs.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for ONNX Runtime and PyTorch.")
@click.option("--rounds", type=click.IntRange(min=1), default=5, show_default=True,
              help="The engines take turns in this many rounds, so that drifting machine load falls on all alike.")
@click.option("--check-data", help="Also score every engine on these labelled images (a data spec): Dice, mIoU, "
              "accuracy, AUC, and agreement with the first FP32 engine (class flips, malignant to benign apart).")
@click.option("--split", help="FOLDS.json:K: score only the test images of fold K of a `cosa-edge cv` folds file "
              "(images held out from that fold's training).")
@overwrite_option
def bench(engines: tuple[str, ...], server: str | None, model_name: str, concurrency: str, tls_ca: str | None,
          baseline: str | None, report_dir: str, batches: str, warmup: int, iterations: int,
          duration: float | None, video: str | None, annotated_video: bool, threads: int | None, rounds: int,
          check_data: str | None, split: str | None, overwrite: bool) -> None:
    """Latency of engines side by side: percentiles, stages, throughput, ratios, and a report folder.

    All engines (and the --baseline checkpoint, run as PyTorch eager FP32) are loaded together and
    measured interleaved: each one's iterations are spread over --rounds rounds in which the engines
    take turns, so the ratios compare them under the same machine load. With --check-data every
    engine is also scored on the same labelled images, so accuracy stands beside latency. The
    model's GFLOP per image is counted from its ONNX graph, and each engine's achieved GFLOP/s
    shown beside it. With --video, the whole streaming pipeline and the engine alone run over the
    same number of frames, taking turns in --rounds rounds; the report gives each round's ratio.

    With --server, a Triton server is load-tested instead: --concurrency requests kept in flight for
    --duration seconds each (default 10), throughput and latency percentiles, every request counted
    as answered or failed; with --engine, the served engine is also measured alone for the ratio.
    """
    from ..backends import open_engine
    from ..bench.load_report import LOAD_REPORT_FILES
    from ..bench.report import REPORT_FILES
    from ..bench.session import LocalBench, ServerBench, parse_batch_sizes, run_local_bench, run_server_bench
    from ..data.sources import data_spec_folder
    from ..data.splits import parse_split
    from ..engines import engine_files
    from ..outputs import existing_path, guard_outputs

    written = LOAD_REPORT_FILES if server else REPORT_FILES
    guard_outputs({"--engine": [f for path in engines for f in engine_files(path)], "--baseline": baseline,
                   "--video": existing_path(video), "--check-data": data_spec_folder(check_data),
                   "--split": parse_split(split)[0] if split else None, "--tls-ca": tls_ca},
                  {"--report": [Path(report_dir) / name for name in written]}, overwrite=overwrite)
    if split and not check_data:
        raise CosaEdgeError("--split chooses images of --check-data; give --check-data too")
    if not annotated_video and not video:
        raise CosaEdgeError("--no-annotated-video says how to run the pipeline of --video; give --video too")
    if server:
        if baseline or video or check_data:
            raise CosaEdgeError("--server load-tests a server; --baseline, --video and --check-data are for local "
                                "engines")
        if len(engines) > 1:
            raise CosaEdgeError("with --server, --engine names the one served engine (measured locally for comparison)")
        files = run_server_bench(ServerBench(server, model_name, Path(report_dir), concurrency,
                                             Path(tls_ca) if tls_ca else None, engines[0] if engines else None,
                                             duration or 10.0, warmup, iterations, threads), open_engine)
        click.echo((Path(report_dir) / "report.md").read_text().split("![throughput]")[0])
    else:
        if not engines:
            raise CosaEdgeError("give --engine (one or more engines to measure) or --server (a Triton server to "
                                "load-test)")
        plan = LocalBench(engines, Path(report_dir), parse_batch_sizes(batches), baseline, TORCH.name, warmup,
                          iterations, duration, rounds, threads, video, annotated_video, check_data, split)
        files = run_local_bench(plan, open_engine)
        click.echo((Path(report_dir) / "report.md").read_text().split("![latency]")[0])
    click.echo("wrote " + ", ".join(str(f) for f in files))
