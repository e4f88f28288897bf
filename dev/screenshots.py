"""Screenshots of the provider in Airflow's UI, from headless Debian Chromium driven by Playwright.

Starts the same real Airflow stack as the end-to-end test (``tests/e2e/airflow_stack.py``), runs
``example_batchpred_local_file`` once through the REST API, signs into the UI as a person would and
saves:

* ``docs/screenshots/connection-form.png``: the "Add Connection" form with type DataRobot chosen.
  The form's sections are an accordion that opens one section at a time, so the picture shows the
  dialog twice, side by side: "Standard Fields" open (the password relabelled "API Token") and
  "Extra Fields" open (Endpoint, request timeout, TLS verification).
* ``docs/screenshots/task-extra-link.png``: the finished task's page (Details tab) with the
  "DataRobot Batch Prediction Job" extra-link button; its ``href`` is checked against the job URL
  that Airflow's REST API returns.

Set-up once: ``bash dev/services/install_browser.sh`` (Debian chromium + the pinned playwright).
Run: ``.venv/bin/python dev/screenshots.py [--out-dir docs/screenshots]``.
"""

from __future__ import annotations

import argparse
import base64
import logging
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT / "tests"), str(REPO_ROOT / "tests" / "e2e")]

from airflow_stack import ADMIN_USER, EXAMPLE_DAG_ID, AirflowStack, running_stack  # noqa: E402
from playwright.sync_api import Page, sync_playwright  # noqa: E402

from airflow_batchpred.server.models import DEMO_REGRESSION_ID, write_demo_csv  # noqa: E402

log = logging.getLogger("screenshots")

CHROMIUM = "/usr/bin/chromium"
# Flags that work for Debian's chromium as root on a machine without outside network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TASK_ID = "score_local_file"
LINK_NAME = "DataRobot Batch Prediction Job"


def run_example(stack: AirflowStack) -> str:
    """Trigger the local-file example over REST, wait for success, return the run id."""
    input_file = stack.data_dir / "input.csv"
    write_demo_csv(DEMO_REGRESSION_ID, input_file, 200, seed=3)
    stack.wait_for_dag(EXAMPLE_DAG_ID)
    run = stack.trigger(
        EXAMPLE_DAG_ID,
        {
            "input_file": str(input_file),
            "output_file": str(stack.data_dir / "predictions.csv"),
            "deployment_id": DEMO_REGRESSION_ID,
            "max_explanations": 3,
        },
    )
    finished = stack.wait_for_run(EXAMPLE_DAG_ID, run["dag_run_id"], timeout=180)
    if finished["state"] != "success":
        raise RuntimeError(f"run {run['dag_run_id']} ended {finished['state']}:\n{stack.log_tails()}")
    return str(run["dag_run_id"])


def sign_in(page: Page, stack: AirflowStack) -> None:
    page.goto(f"{stack.url}/")
    page.get_by_label("Username").fill(ADMIN_USER)
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{stack.url}/", timeout=60_000)


def connection_form(page: Page, stack: AirflowStack, out: Path) -> None:
    page.goto(f"{stack.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input[name=connection_id]").fill("datarobot_default")
    dialog.get_by_role("combobox").click()
    page.keyboard.type("DataRobot")
    page.get_by_role("option", name="DataRobot", exact=True).click()

    standard = dialog.get_by_role("button", name="Standard Fields", exact=True)
    extra = dialog.get_by_role("button", name="Extra Fields", exact=True)
    standard.wait_for()
    if standard.get_attribute("aria-expanded") != "true":
        standard.click()
    dialog.locator("label", has_text="API Token").wait_for()
    page.wait_for_timeout(500)
    first = dialog.screenshot()

    extra.click()
    dialog.locator("label", has_text="Endpoint").wait_for()
    dialog.locator("label", has_text="Request timeout (s)").wait_for()
    page.wait_for_timeout(500)
    second = dialog.screenshot()

    _side_by_side(
        page,
        out,
        [
            (first, 'Type "DataRobot": the password is relabelled "API Token"; host, port, login hidden'),
            (second, "Extra Fields from the provider's conn-fields: Endpoint, timeout, TLS"),
        ],
    )


def _side_by_side(page: Page, out: Path, panels: list[tuple[bytes, str]]) -> None:
    """Lay PNG panels out in one page, each with a caption, and save a screenshot of it."""
    figures = "".join(
        f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}">'
        f"<figcaption>{caption}</figcaption></figure>"
        for png, caption in panels
    )
    page.set_viewport_size({"width": 1800, "height": 900})
    page.set_content(
        "<html><body style='margin:0;background:#f4f6f8;font-family:sans-serif'>"
        "<div id='sheet' style='display:flex;gap:24px;align-items:flex-start;padding:24px'>"
        f"{figures}</div></body></html>"
    )
    page.add_style_tag(
        content="figure{margin:0;background:#fff;padding:8px;border:1px solid #ccd}"
        "figure img{display:block;max-width:840px}"
        "figcaption{padding:8px 4px 0;color:#333;font-size:15px}"
    )
    page.locator("#sheet").screenshot(path=str(out))


def task_extra_link(page: Page, stack: AirflowStack, run_id: str, out: Path) -> str:
    links = stack.api(
        "GET", f"/api/v2/dags/{EXAMPLE_DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/links"
    ).json()["extra_links"]
    expected = links.get(LINK_NAME)
    if not expected:
        raise RuntimeError(f"the REST API returned no {LINK_NAME!r} link: {links}")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{stack.url}/dags/{EXAMPLE_DAG_ID}/runs/{quote(run_id, safe='')}/tasks/{TASK_ID}/details")
    button = page.get_by_role("link", name=LINK_NAME, exact=True)
    button.wait_for(timeout=60_000)
    href = button.get_attribute("href")
    if href != expected:
        raise RuntimeError(f"the UI's {LINK_NAME!r} button points at {href}, the REST API says {expected}")
    page.get_by_text("success", exact=True).first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(out))
    return href


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="batchpred-screenshots-") as tmp,
        running_stack(Path(tmp)) as stack,
    ):
        run_id = run_example(stack)
        log.info("Run %s succeeded after %.0f s", run_id, time.monotonic() - started)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1300})
                sign_in(page, stack)
                form_png = args.out_dir / "connection-form.png"
                connection_form(page, stack, form_png)
                log.info("Saved %s", form_png)
                link_png = args.out_dir / "task-extra-link.png"
                href = task_extra_link(page, stack, run_id, link_png)
                log.info("Saved %s (button href %s)", link_png, href)
            finally:
                browser.close()
    log.info("Done in %.0f s", time.monotonic() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
