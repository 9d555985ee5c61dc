"""`cosa-edge infer`: an engine (or a Triton server) over video, images or DICOM."""

from __future__ import annotations

from pathlib import Path

import click

from ..backends import BACKENDS
from ..errors import CosaEdgeError
from .app import cli, research_use
from .options import overwrite_option


@cli.command()
@click.option("--video", "source", required=True,
              help="Video file (mp4, avi, mov...), an image, a folder of images, a DICOM file or series folder, a "
              "camera index (0) or a stream URL.")
@click.option("--engine", "engine_path", type=click.Path(dir_okay=False),
              help="An engine: .onnx (ONNX Runtime), .engine (TensorRT) or .pt (PyTorch).")
@click.option("--backend", type=click.Choice(list(BACKENDS)), help="Override the runtime.")
@click.option("--server", help="Instead of --engine: HOST:PORT of a Triton server's gRPC endpoint serving the model "
              "(`cosa-edge serve`, or an export-triton repository); its rules come from the model's parameters.")
@click.option("--model", "model_name", default="cosa_edge", show_default=True, help="The model's name on --server.")
@click.option("--in-flight", type=click.IntRange(min=1), default=8, show_default=True,
              help="With --server: frames sent at once, so that round trips do not set the pace.")
@click.option("--tls-ca", type=click.Path(dir_okay=False),
              help="With --server: PEM certificate authority of a TLS server.")
@click.option("--out", type=click.Path(dir_okay=False), help="Annotated video (or image, for an image source).")
@click.option("--results", type=click.Path(dir_okay=False), help="JSONL file, one record per frame.")
@click.option("--roi", help="x,y,w,h: analyse only this part of the frame (crops a scanner's text and rulers); "
              "'auto' finds the imaging area of a screen capture from its first frames. Default: a DICOM file's 2D "
              "tissue region, else the whole frame.")
@click.option("--region", type=click.IntRange(min=0),
              help="Which 2D tissue region of a DICOM image to analyse where it holds several (dual view), from 0.")
@click.option("--pixel-spacing", help="MM or DY,DX: millimetres per pixel, for sources that carry no calibration "
              "(DICOM files carry their own). Holds for one depth setting only: a scanner's scale changes with depth.")
@click.option("--keep-outside-roi", is_flag=True, help="Keep what lies outside the region of interest in the "
              "annotated video. By default it is blanked, since scanners burn the patient's name into the header.")
@click.option("--dicom-seg", type=click.Path(dir_okay=False), help="For a single-frame DICOM image: write the lesion "
              "mask as a DICOM Segmentation referencing it (carries the patient's identity, as DICOM requires).")
@click.option("--dicom-sr", type=click.Path(dir_okay=False), help="For a DICOM cine or still: write the lesion's long "
              "and short axes and area per frame as a DICOM measurement report (TID 1500) referencing it.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Frames per engine call; the loop never waits to fill a batch.")
@click.option("--realtime", is_flag=True, help="Bounded latency for live probes: read files at their frame rate, "
              "skip stale frames when the engine falls behind, and report how many.")
@click.option("--smooth", type=click.FloatRange(0.01, 1.0), default=1.0, show_default=True,
              help="Exponential smoothing of the class probability over frames (1 = off; 0.3 steadies the label).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for the engine.")
@overwrite_option
@research_use
def infer(source: str, engine_path: str | None, backend: str | None, server: str | None, model_name: str,
          in_flight: int, tls_ca: str | None, out: str | None, results: str | None, roi: str | None,
          region: int | None, pixel_spacing: str | None, keep_outside_roi: bool, dicom_seg: str | None,
          dicom_sr: str | None, batch_size: int, realtime: bool, smooth: float, threads: int | None,
          overwrite: bool) -> None:
    """Run an engine over ultrasound video, images or DICOM; write an annotated video and per-frame JSONL.

    DICOM files (single- and multi-frame) and DICOM series folders are recognised by content: every frame is
    read, at the file's own frame rate, with the scanner's 2D tissue region and its millimetre calibration
    (install the dicom extra). Each frame record names its region of interest, its instance (DICOM) and the
    lesion's area and long and short axes in mm where the source is calibrated (null otherwise).

    With --server, a Triton server runs the model (`cosa-edge serve` or NVIDIA's container); frames are
    prepared here and sent --in-flight at a time, and the outputs are the same as a local engine's.

    The engine's hash is checked on load. The JSONL starts with a header record (engine name and hash,
    model, thresholds, source file name, start time; no folder names, no patient attributes) and every frame
    record carries the engine's hash.
    """
    import numpy as np

    from ..backends import open_engine
    from ..stream.run import infer_source, parse_pixel_spacing, parse_roi

    if out is None and results is None and dicom_seg is None and dicom_sr is None:
        raise CosaEdgeError("nothing to write: give --out (annotated video), --results (JSONL), --dicom-seg or "
                            "--dicom-sr")
    if (engine_path is None) == (server is None):
        raise CosaEdgeError("give --engine (a local engine) or --server (a Triton server), one of the two")
    from ..engines import engine_files
    from ..outputs import existing_path, guard_outputs

    guard_outputs({"--video": existing_path(source), "--engine": engine_files(engine_path) if engine_path else None,
                   "--tls-ca": tls_ca},
                  {"--out": out, "--results": results, "--dicom-seg": dicom_seg, "--dicom-sr": dicom_sr},
                  overwrite=overwrite)
    if server:
        from ..serve.client import TritonServerEngine

        opened = TritonServerEngine(server, model_name, Path(tls_ca) if tls_ca else None)
        batch_size = max(batch_size, in_flight)
    else:
        opened = open_engine(engine_path, backend=backend, threads=threads)
    with opened as engine:
        stats = infer_source(source, engine, Path(out) if out else None, Path(results) if results else None,
                             batch_size=batch_size, roi=parse_roi(roi), realtime=realtime, smoothing=smooth,
                             region=region, pixel_spacing_mm=parse_pixel_spacing(pixel_spacing),
                             keep_outside_roi=keep_outside_roi, notify=lambda line: click.echo(line, err=True),
                             dicom_seg=Path(dicom_seg) if dicom_seg else None,
                             dicom_sr=Path(dicom_sr) if dicom_sr else None)
    if stats.stopped_early:
        click.echo(f"warning: {stats.stopped_early}", err=True)
    skipped = f", skipped {stats.frames_skipped} stale frames" if realtime else ""
    interrupted = " (interrupted: the outputs hold the frames done)" if stats.interrupted else ""
    latency = ""
    if stats.latencies_ms:
        median, p95 = np.percentile(stats.latencies_ms, [50, 95])
        latency = f"; capture-to-result latency median {median:.0f} ms, 95th percentile {p95:.0f} ms"
    click.echo(f"processed {stats.frames_processed} of {stats.frames_read} frames at {stats.fps:.1f} frames/s{skipped}"
               f"{latency}{interrupted}; wrote {', '.join(p for p in (out, results) if p)}")

