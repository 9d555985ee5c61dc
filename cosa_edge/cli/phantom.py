"""`cosa-edge phantom`: synthetic ultrasound images, masks and a probe-sweep video (and DICOM cine)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CosaEdgeError
from .app import cli
from .options import overwrite_option


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder to write into.")
@click.option("--count", type=click.IntRange(min=1), default=48, show_default=True, help="Number of images.")
@click.option("--size", type=click.IntRange(min=32), default=256, show_default=True, help="Image size in pixels.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--video/--no-video", default=True, show_default=True,
              help="Also render a probe-sweep video (sweep.mp4).")
@click.option("--frames", type=click.IntRange(min=1), default=120, show_default=True, help="Frames of the video.")
@click.option("--frame-size", default="256x320", show_default=True, help="HEIGHTxWIDTH of the video's frames.")
@click.option("--dicom", is_flag=True, help="Also write the sweep as a DICOM cine loop (sweep.dcm: JPEG frames, "
              "Frame Time, a 2D tissue region at 0.1 mm per pixel); needs the dicom extra.")
@click.option("--fps", type=click.FloatRange(min=1, max=240), default=20.0, show_default=True,
              help="Frame rate of the sweep video and cine (a probe delivers 20 to 60).")
@overwrite_option
def phantom(out_dir: str, count: int, size: int, seed: int, video: bool, frames: int, frame_size: str,
            dicom: bool, fps: float, overwrite: bool) -> None:
    """Write synthetic ultrasound phantoms (images/, masks/, labels.csv) and a sweep video."""
    from ..outputs import guard_outputs

    written = ["images", "masks", "labels.csv"] + ["sweep.mp4"] * video + ["sweep.dcm"] * dicom
    guard_outputs({}, {"--out": [Path(out_dir) / name for name in written]}, overwrite=overwrite)
    from ..data.folder import write_folder
    from ..data.phantom import make_phantom_dataset, write_sweep_video

    write_folder(make_phantom_dataset(count, seed=seed, size=(size, size)), Path(out_dir))
    click.echo(f"wrote {count} phantoms to {out_dir} (use --data folder:{out_dir})")
    if video or dicom:
        try:
            height, width = (int(v) for v in frame_size.lower().split("x"))
        except ValueError:
            raise CosaEdgeError(f"--frame-size {frame_size!r} must be HEIGHTxWIDTH, e.g. 480x640") from None
    if video:
        path = write_sweep_video(Path(out_dir) / "sweep.mp4", seed=seed, frames=frames, size=(height, width), fps=fps)
        click.echo(f"wrote {path}")
    if dicom:
        from ..data.dicom_phantom import write_sweep_dicom

        path = write_sweep_dicom(Path(out_dir) / "sweep.dcm", seed=seed, frames=frames, size=(height, width),
                                 fps=fps)
        click.echo(f"wrote {path}")

