"""Teaching material (docs/teaching.md): the episode GIF, the walk-through example and the tutorial notebook."""

from __future__ import annotations

import importlib.util
import io
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image, ImageSequence

from dgpo_env.envs.animation import LEGEND_FRACTION, EpisodeFrame, episode_gif_bytes, save_episode_gif
from dgpo_env.search_spaces import NB201SearchSpace, ToySearchSpace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "teaching_walkthrough.py"
NOTEBOOK = ROOT / "examples" / "tutorial.ipynb"
SIZE = (640, 360)


def _episode(space: ToySearchSpace | NB201SearchSpace, n: int, seed: int = 0) -> list[EpisodeFrame]:
    rng = np.random.default_rng(seed)
    frames = [EpisodeFrame(space.sample_uniform(rng), 100)]
    for k in range(1, n):
        probs = rng.uniform(0.0, 1.0, space.n_nodes)
        frames.append(EpisodeFrame(space.sample_uniform(rng), 100 - 10 * k, probs, f"step {k}"))
    return frames


def _frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as gif:
        return [frame.copy() for frame in ImageSequence.Iterator(gif)]


def _pretrained_or_skip(name: str) -> None:
    from agents.diffusion.model import CheckpointError, DiffusionModel

    try:
        DiffusionModel.from_pretrained(name)
    except (CheckpointError, ValueError) as err:
        pytest.skip(f"the shipped model {name!r} is not installed: {err}")


@pytest.mark.parametrize("space", [ToySearchSpace(), NB201SearchSpace()], ids=lambda s: s.name)
def test_gif_frames_size_and_fixed_legend_and_palette(tmp_path: Path, space: ToySearchSpace) -> None:
    path = save_episode_gif(tmp_path / "sub" / "episode.gif", space, _episode(space, 5), size=SIZE)
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))  # atomic: no temporary file left
    frames = _frames(path)
    assert len(frames) == 5
    assert all(frame.size == SIZE for frame in frames)
    palettes = {bytes(frame.getpalette() or []) for frame in frames if frame.mode == "P"}
    assert len(palettes) <= 1  # one palette shared by every frame
    rgb = [np.asarray(frame.convert("RGB")) for frame in frames]
    legend = [picture[:, int(SIZE[0] * (1 - LEGEND_FRACTION)) :] for picture in rgb]
    assert all(np.array_equal(legend[0], other) for other in legend[1:])
    assert not all(np.array_equal(rgb[0], other) for other in rgb[1:])  # the graphs do change
    # Node type k is tab10 colour k in every frame: the input node (type 0, blue) is drawn in the graph panel.
    tab10_blue = np.array([31, 119, 180])
    for picture in rgb:
        graph_panel = picture[:, : int(SIZE[0] * (1 - LEGEND_FRACTION))].astype(int)
        assert (np.abs(graph_panel - tab10_blue).sum(-1) <= 6).sum() > 100


def test_gif_durations_hold_the_last_frame() -> None:
    space = ToySearchSpace()
    data = episode_gif_bytes(space, _episode(space, 3), size=SIZE, frame_ms=200, hold_last_ms=1000)
    with Image.open(io.BytesIO(data)) as gif:
        durations = [frame.info["duration"] for frame in ImageSequence.Iterator(gif)]
    assert durations == [200, 200, 1000]


def test_gif_arguments_are_validated() -> None:
    space = ToySearchSpace()
    frames = _episode(space, 2)
    with pytest.raises(ValueError, match="non-empty"):
        episode_gif_bytes(space, [])
    with pytest.raises(TypeError, match="EpisodeFrame"):
        episode_gif_bytes(space, [frames[0], "frame"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="shape"):
        episode_gif_bytes(space, [EpisodeFrame(frames[0].dag, 5, np.ones(2))])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        episode_gif_bytes(space, [EpisodeFrame(frames[0].dag, 5, np.full(space.n_nodes, 2.0))])
    with pytest.raises(ValueError, match="nodes"):
        episode_gif_bytes(NB201SearchSpace(), frames)
    with pytest.raises(ValueError, match="size"):
        episode_gif_bytes(space, frames, size=(100, 100))
    with pytest.raises(ValueError, match="frame_ms"):
        episode_gif_bytes(space, frames, frame_ms=0)


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("teaching_walkthrough", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_walkthrough_example_writes_the_gif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _pretrained_or_skip("toy")
    out = tmp_path / "walk.gif"
    frames = _example().main(["--benchmark", "toy", "--steps", "3", "--out", str(out)])
    assert len(frames) == 4 and frames[0].chosen_probs is None
    assert all(f.chosen_probs is not None and ((f.chosen_probs > 0) & (f.chosen_probs <= 1)).all() for f in frames[1:])
    gif = _frames(out)
    assert len(gif) == 4 and gif[0].size == (960, 540)
    assert "saved 4 frames" in capsys.readouterr().out


def test_tutorial_notebook_is_stored_clean() -> None:
    nbformat = pytest.importorskip("nbformat", reason="the 'teaching' extra is not installed")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_tutorial_notebook_executes(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="the 'teaching' extra is not installed")
    nbclient = pytest.importorskip("nbclient", reason="the 'teaching' extra is not installed")
    pytest.importorskip("ipykernel", reason="the 'teaching' extra is not installed")
    _pretrained_or_skip("nb201")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # One more cell reports the kernel's interpreter: it must be this virtual environment's python.
    notebook.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    elapsed = time.perf_counter() - start
    print(f"tutorial notebook executed in {elapsed:.1f} s")
    assert Path(notebook.cells[-1].outputs[0]["text"].strip()).resolve() == Path(sys.executable).resolve()
    errors = [out for cell in notebook.cells for out in cell.get("outputs", []) if out.output_type == "error"]
    assert not errors
