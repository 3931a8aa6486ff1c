"""End to end in a real browser: JupyterLab + headless Chromium (Playwright).

A notebook (generated here) shows two flows and the pool; after Run All the test clicks
the widgets' buttons and checks what the page shows: the flow widget, >= 3 different
preview images during one sampling run before the result, the progress reaching the
end, the result image, a draft image from Preview, Stop ending a 200-step run within one
step, and the pool widget listing the models. It saves a screenshot of the flow widget
to ``artifacts/flow_widget.png`` and ``docs/flow_widget.png`` (embedded in the README).

Uses the embedded digits model when ``lightflow/assets/digits`` has one, else the tiny
random-weight SD model from ``tests.support``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (CI installs it)",
                allow_module_level=True)

from playwright.sync_api import Page, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}

SETUP = """\
import sys
import torch
torch.set_num_threads(1)
sys.path.insert(0, {root!r})
from pathlib import Path
import lightflow as lf
if (Path({root!r}) / "lightflow/assets/digits/model_index.json").exists():
    sd, text = lf.checkpoint(), "a red seven"          # the embedded digits model
else:
    from tests.support import build_sd15
    sd, text = lf.checkpoint(build_sd15(Path({tmp!r}) / "sd15")), "a cat"
"""
CELLS = [
    "flow = lf.prompt(text).encode(sd).sample(sd, steps=100, cfg=4.0, seed=1, scheduler='euler')"
    ".decode(sd)\nflow",
    "long = flow.replace(steps=200, seed=2)\nlong",
    "lf.pool",
]

# Records every image the preview / result <img> of the first flow widget loads, with a
# hash of its pixels, so that "different images" means different pixels.
WATCH = """() => {
  const hash = (img) => {
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
    const d = ctx.getImageData(0, 0, c.width, c.height).data;
    let h = 7; for (let i = 0; i < d.length; i++) { h = (Math.imul(h, 31) + d[i]) >>> 0; }
    return `${c.width}x${c.height}:${h}`;
  };
  window.__lf = {previews: [], results: []};
  const w = document.querySelectorAll('.lightflow-flow-widget')[0];
  const watch = (img, list) => img.addEventListener('load',
      () => list.push({t: performance.now(), h: hash(img)}));
  watch(w.querySelector('img.lightflow-preview'), window.__lf.previews);
  watch(w.querySelector('img.lightflow-result'), window.__lf.results);
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def write_notebook(folder: Path, tmp: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP.format(root=str(ROOT), tmp=str(tmp)))]
    nb.cells += [nbformat.v4.new_code_cell(src) for src in CELLS]
    path = folder / "widget_demo.ipynb"
    nbformat.write(nb, path)
    return path


def start_lab(tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    for name in ("nb", "config", "data", "runtime", "settings", "app_settings", "ws"):
        (tmp / name).mkdir()
    (tmp / "app_settings" / "overrides.json").write_text(json.dumps(OVERRIDES))
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTER_DATA_DIR": str(tmp / "data"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "ws"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={port}",
           "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.open_browser=False",
           "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={tmp / 'nb'}",
           f"--LabApp.user_settings_dir={tmp / 'settings'}",
           f"--LabApp.app_settings_dir={tmp / 'app_settings'}",
           f"--LabApp.workspaces_dir={tmp / 'ws'}", "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp / "server.log"
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            cwd=tmp / "nb")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited:\n{log.read_text()[-3000:]}")
        try:
            get_json(f"{base}/api/status")
            return proc, base, log
        except OSError:
            time.sleep(0.3)
    proc.terminate()
    raise RuntimeError(f"jupyter lab did not start:\n{log.read_text()[-3000:]}")


def stop_lab(proc: subprocess.Popen[bytes], base: str) -> None:
    """Shut the kernels down through the API, then stop the server by its PID."""
    try:
        for kernel in get_json(f"{base}/api/kernels"):  # type: ignore[union-attr]
            request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}",
                                             method="DELETE")
            urllib.request.urlopen(request, timeout=10).close()
    except OSError:
        pass
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def text_of(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text()


def wait_text(page: Page, selector: str, pattern: str, timeout: float = 60) -> re.Match[str]:
    """Poll the text of ``selector`` until it matches ``pattern``."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        loc = page.locator(selector)
        if loc.count():
            last = loc.first.inner_text()
            match = re.search(pattern, last)
            if match:
                return match
        time.sleep(0.02)
    raise AssertionError(f"{selector!r} never matched {pattern!r}; last text: {last!r}")


def test_widgets_in_jupyterlab(tmp_path: Path) -> None:
    started = time.monotonic()
    proc, base, log = start_lab(tmp_path)
    artifacts = ROOT / "artifacts"
    artifacts.mkdir(exist_ok=True)
    write_notebook(tmp_path / "nb", tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS,
                                         headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 2400})
            try:
                check_widgets(page, base, artifacts)
            except Exception:
                page.screenshot(path=str(artifacts / "browser_failure.png"), full_page=True)
                raise
            browser.close()
    except Exception:
        print(log.read_text()[-4000:])
        raise
    finally:
        stop_lab(proc, base)
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copyfile(artifacts / "flow_widget.png", docs / "flow_widget.png")
    print(f"browser test took {time.monotonic() - started:.1f} s")


def check_widgets(page: Page, base: str, artifacts: Path) -> None:
    """Open the notebook, Run All, then drive and check the widgets."""
    A = ".lightflow-flow-widget >> nth=0"
    B = ".lightflow-flow-widget >> nth=1"
    page.goto(f"{base}/lab/tree/widget_demo.ipynb?reset", timeout=90_000)
    # a real kernel, idle, before Run All
    wait_text(page, ".jp-Toolbar-kernelName", r"Python", timeout=90)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]',
                           timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()

    # the widgets appear (two flows, the pool) and the kernel settles
    page.wait_for_selector(".lightflow-pool-widget", timeout=180_000)
    assert page.locator(".lightflow-flow-widget").count() == 2
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]',
                           timeout=60_000)
    assert "IMAGE" in text_of(page, f"{A} >> .lightflow-graph")
    page.evaluate(WATCH)

    # Run: live previews change while sampling, progress ends, the result shows
    page.locator(f"{A} >> button.lightflow-run").click()
    wait_text(page, f"{A} >> .lightflow-status", r"done \(final\)", timeout=180)
    assert "done in" in text_of(page, f"{A} >> .lightflow-progress-label")
    width = page.locator(f"{A} >> .lightflow-progress .progress-bar").evaluate(
        "el => el.style.width")
    assert width == "100%", width
    page.wait_for_function("() => window.__lf.results.length >= 1", timeout=30_000)
    seen = page.evaluate("() => window.__lf")
    first_result = seen["results"][0]["t"]
    before = {p["h"] for p in seen["previews"] if p["t"] < first_result}
    assert len(before) >= 3, seen
    graph = text_of(page, f"{A} >> .lightflow-graph")
    assert "done" in graph and "running" not in graph and "waiting" not in graph
    page.locator(A).screenshot(path=str(artifacts / "flow_widget.png"))

    # Preview: a draft image replaces the result
    page.locator(f"{A} >> button.lightflow-draft").click()
    wait_text(page, f"{A} >> .lightflow-status", r"done \(draft\)", timeout=120)
    wait_text(page, A, r"draft image", timeout=30)
    page.wait_for_function("() => window.__lf.results.length >= 2", timeout=30_000)

    # Stop: a 200-step run ends within one step of the click
    page.locator(f"{B} >> button.lightflow-run").click()
    shown = int(wait_text(page, f"{B} >> .lightflow-progress-label",
                          r"step ([3-9]|\d\d+)/200", timeout=120).group(1))
    page.locator(f"{B} >> button.lightflow-stop").click()
    match = wait_text(page, f"{B} >> .lightflow-status",
                      r"stopped at step (\d+)/200 \(Stop clicked at step (\d+)\)",
                      timeout=60)
    stopped, clicked = int(match.group(1)), int(match.group(2))
    assert clicked <= stopped <= clicked + 1, match.group(0)
    assert shown <= stopped < 200
    print(f"Stop: page showed step {shown}, kernel got the click at step {clicked}, "
          f"sampling stopped at step {stopped}/200")

    # the pool widget lists the models the runs loaded
    wait_text(page, ".lightflow-pool-table", r"UNET", timeout=30)
    pool = text_of(page, ".lightflow-pool-table")
    assert "VAE" in pool and "TEXT_ENCODER" in pool
    page.screenshot(path=str(artifacts / "jupyterlab.png"), full_page=True)
