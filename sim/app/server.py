"""The explorer's web page (Shiny for Python) and its server: controls, live results, save and report.

Shiny serves every asset (Bootstrap, jQuery, its own JavaScript) from the installed package, so the
page works offline; there is no JavaScript of ours. Each browser tab is a Shiny session with its own
Explorer (sim/app/engine.py); the process pool is shared and small. Controls whose values depend on
the loaded scenario carry the scenario's version in their id, so switching scenarios never mixes the
old file's slider values into the new one. Every input is read through sim/app/inputs.py, which
validates it with the scenario schema; a value the schema refuses is shown beside its control with
the command line's message, and nothing runs. Unexpected errors show Shiny's sanitised message,
never a traceback.
"""

from __future__ import annotations

import html
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiny import App, reactive, render, ui

from sim.app import views
from sim.app.engine import FIRST_ESTIMATE, Explorer, Request, process_pool
from sim.app.inputs import (
    CONTROLS,
    MAX_N,
    MAX_REPS,
    TESTS,
    Grid,
    control_source,
    grid_from,
    key_sources,
    resolve,
)
from sim.app.keep import ReportJob, save_scenario, start_report
from sim.scenario.schema import InputError, Scenario, load_scenario

POLL_SECONDS = 0.15
REFRESH_SECONDS = 1.0
REFRESH_GROWTH = 1.5        # a refinement is shown when it rests on half as many trials again (CPU for the workers)

STYLE = """
body { font-size: 14px; }
.error { color: #b00020; white-space: pre-wrap; font-size: 12.5px; }
.source { color: #555; font-size: 11.5px; margin: -6px 0 10px 0; }
.headline { font-size: 16px; font-weight: 500; }
.warning { color: #8a1c00; font-weight: 600; }
.note { color: #444; font-size: 12.5px; }
#oc td, #oc th { padding: 2px 8px; text-align: right; }
#oc th { font-weight: 600; font-size: 12.5px; }
table td, table th { padding: 2px 8px; }
img { max-width: 100%; }
.recalculating { opacity: 1 !important; }  /* results refresh several times a second: no fading */
.card { margin-bottom: 12px; }
"""


@dataclass
class Config:
    """What every session shares: the scenario library, defaults, the pool and where results are kept."""

    scenario: Path
    library: dict[str, Path]
    out: Path
    grid: Grid
    pool: Any
    workers: int
    sweep_command: list[str] | None = None
    jobs: list[ReportJob] = field(default_factory=list)


def scenario_library(given: Path, folders: tuple[Path, ...]) -> dict[str, Path]:
    """Label -> path: the given scenario first, then every *.toml in the library folders."""
    library = {f"{given.name} (given)": given}
    for folder in folders:
        for path in sorted(folder.glob("*.toml")):
            if path.resolve() != given.resolve():
                library.setdefault(f"{path.name} ({folder})", path)
    return library


def control_ui(control, scenario: Scenario, version: int, sources: dict) -> ui.TagList:
    shown = control.shown(scenario)
    source = control_source(control, scenario, sources)
    note = f"as loaded: {control.value(scenario):.4g} {control.unit}" + (f" ({control.moves})" if control.moves else "")
    return ui.TagList(
        ui.input_slider(f"{control.name}_{version}", f"{control.label} ({control.unit})", control.lo, control.hi,
                        shown, step=control.step, width="100%"),
        ui.div(note, ui.br(), source, class_="source", id=f"source-{control.name}"))


def page() -> ui.Tag:
    """The page: controls in the sidebar, answers in the main panel."""
    groups = (("Reaching transplant", ("crc", "mrd", "no_donor", "refusal")),
              ("After transplant", ("relapse", "nrm")),
              ("Accrual", ("accrual", "ramp")),
              ("Design", ("p0", "p1", "alpha")))
    panels = []
    for title, names in groups:
        items = [ui.div(ui.output_ui(f"ctl_{name}"), ui.output_ui(f"err_{name}")) for name in names]
        if title == "Design":
            items += [ui.output_ui("ctl_test"), ui.output_ui("err_test")]
        panels.append(ui.accordion_panel(title, *items))
    panels.append(ui.accordion_panel(
        "Sample sizes and simulation",
        ui.row(ui.column(4, ui.input_numeric("n_min", "smallest n", 20, min=1, max=MAX_N)),
               ui.column(4, ui.input_numeric("n_max", "largest n", 100, min=1, max=MAX_N)),
               ui.column(4, ui.input_numeric("n_step", "step", 10, min=1, max=MAX_N))),
        ui.row(ui.column(6, ui.input_numeric("reps", "simulated trials", 2000, min=10, max=MAX_REPS, step=500)),
               ui.column(6, ui.input_numeric("seed", "seed", 1, min=0))),
        ui.output_ui("err_study")))
    panels.append(ui.accordion_panel(
        "Any other value, by its name",
        ui.output_ui("ctl_other"), ui.output_ui("err_other")))
    sidebar = ui.sidebar(
        ui.input_select("scenario", "Scenario", choices=[], width="100%"),
        ui.accordion(*panels, open=["Reaching transplant", "After transplant", "Accrual", "Design"],
                     multiple=True),
        width=420)
    keep = ui.card(
        ui.card_header("Keep what you found"),
        ui.row(ui.column(6, ui.input_text("save_name", "name of the new scenario", "", width="100%")),
               ui.column(3, ui.input_action_button("save", "Save as scenario", class_="btn-primary mt-4")),
               ui.column(3, ui.input_action_button("report", "Write the report", class_="mt-4"))),
        ui.output_ui("kept"))
    return ui.page_sidebar(
        sidebar,
        ui.head_content(ui.tags.link(rel="icon", href="data:,"), ui.tags.style(STYLE)),
        ui.busy_indicators.use(spinners=False, pulse=False),
        ui.card(ui.output_ui("headline"), ui.output_ui("status")),
        ui.card(ui.card_header("What changed"), ui.output_ui("changes")),
        ui.layout_columns(
            ui.card(ui.card_header("Power and type I error against the number enrolled"), ui.output_ui("power")),
            ui.card(ui.card_header("Patients to enroll"), ui.output_ui("required")), col_widths=(7, 5)),
        ui.card(ui.card_header("By sample size"), ui.output_ui("table")),
        ui.card(ui.card_header("Expected patient flow"), ui.output_ui("funnel")),
        keep,
        title="What-if explorer: sizing the VIP + blinatumomab and allo-HSCT phase II trial",
        window_title="What-if explorer", lang="en")


def make_app(config: Config) -> App:
    """The Shiny application for this configuration."""

    def server(input, output, session) -> None:
        explorer = Explorer(config.pool, workers=config.workers)
        session.on_ended(explorer.close)
        labels = list(config.library)
        ui.update_select("scenario", choices=labels, selected=labels[0])
        ui.update_text("save_name", value=f"{config.scenario.stem}-explored")
        for name, value in (("n_min", config.grid.ns[0]), ("n_max", config.grid.ns[-1]),
                            ("n_step", config.grid.ns[1] - config.grid.ns[0] if len(config.grid.ns) > 1 else 1),
                            ("reps", config.grid.reps), ("seed", config.grid.seed)):
            ui.update_numeric(name, value=value)
        path = reactive.value(config.scenario)
        version = reactive.value(1)
        snapshot = reactive.value(None)         # what the results show (published at most once a second)
        latest = reactive.value(None)           # the newest summary, for the progress line
        drawn = reactive.value(None)            # what the figures show (the numbers first, then the figures)
        request_error = reactive.value("")
        kept_message = reactive.value("")
        job: reactive.Value[ReportJob | None] = reactive.value(None)

        @reactive.effect
        @reactive.event(input.scenario, ignore_init=True)
        def _switch() -> None:
            label = input.scenario()
            chosen = config.library.get(label) if isinstance(label, str) else None
            if chosen is None or chosen == path.get():
                return
            path.set(chosen)
            version.set(version.get() + 1)
            ui.update_text("save_name", value=f"{chosen.stem}-explored")

        @reactive.calc
        def loaded() -> tuple[Scenario | None, dict, str]:
            try:
                return load_scenario(path.get()), key_sources(path.get()), ""
            except InputError as exc:
                return None, {}, str(exc)

        @reactive.calc
        def state():
            scenario, _, problem = loaded()
            v = version.get()
            if scenario is None:
                return None, None, {"other": problem}
            values = {c.name: input[f"{c.name}_{v}"]() for c in CONTROLS if f"{c.name}_{v}" in input}
            test = input[f"test_{v}"]() if f"test_{v}" in input else None
            other = input[f"other_{v}"]() if f"other_{v}" in input else ""
            resolved = resolve(path.get(), scenario, values, test, other)
            errors = dict(resolved.errors)
            grid = None
            try:
                grid = grid_from(input.n_min(), input.n_max(), input.n_step(), input.reps(), input.seed())
            except InputError as exc:
                errors["study"] = str(exc)
            return resolved, grid, errors

        asked: dict[str, Request] = {}

        @reactive.effect
        def _ask() -> None:
            resolved, grid, errors = state()
            if errors or resolved is None or resolved.scenario is None or grid is None:
                return
            reference = loaded()[0]
            req = Request(resolved.scenario, reference, grid.ns, grid.seed, grid.reps)
            if req == asked.get("last"):
                return                              # e.g. a control bound or moved back and forth: same question
            asked["last"] = req
            try:
                explorer.request(req)
                request_error.set("")
            except InputError as exc:
                request_error.set(str(exc))

        published = {"at": 0.0}

        @reactive.effect
        def _poll() -> None:
            # A new question shows at once; refinements at most once a second and only when they rest on 50% more
            # trials (each redraws two figures, CPU the simulation workers need on a small machine).
            reactive.invalidate_later(POLL_SECONDS)
            snap = explorer.snapshot()
            with reactive.isolate():
                if drawn.get() is not snapshot.get():
                    drawn.set(snapshot.get())       # figures follow the numbers one tick later, in their own flush
                last = snapshot.get()
                if snap is None or snap is latest.get():
                    return
                latest.set(snap)
                first = min(snap.request.reps, FIRST_ESTIMATE)
                if snap.reps < first and not snap.done:
                    return                          # the first estimate waits for enough trials
                fresh = last is None or snap.generation != last.generation or snap.done
                grown = snap.reps >= REFRESH_GROWTH * last.reps if last is not None else True
                if fresh or (grown and time.monotonic() - published["at"] >= REFRESH_SECONDS):
                    published["at"] = time.monotonic()
                    snapshot.set(snap)

        def stale() -> bool:
            return bool(state()[2] or request_error.get())

        for control in CONTROLS:
            _control_outputs(control, output, loaded, version, state)

        @output(id="ctl_test")
        @render.ui
        def _ctl_test():
            scenario = loaded()[0]
            if scenario is None:
                return ""
            return ui.input_select(f"test_{version.get()}", "Test of H0 (analysis.test)", choices=list(TESTS),
                                   selected=scenario.analysis.test)

        @output(id="ctl_other")
        @render.ui
        def _ctl_other():
            return ui.TagList(
                ui.input_text_area(f"other_{version.get()}", "One per line, as on the command line's --set",
                                   "", rows=3, width="100%",
                                   placeholder="post_transplant.nrm_hr_haplo=1.3\nanalysis.cutoff=calendar"),
                ui.div("Any key of scenarios/README.md; e.g. analysis.calendar_cutoff_months=36 or "
                       "mrd.assay=NGS.", class_="source"))

        for name in ("test", "study", "other"):
            _error_output(name, output, state, request_error if name == "other" else None)

        @render.ui
        def headline():
            return ui.HTML(views.headline_html(snapshot.get()))

        @render.ui
        def status():
            return ui.HTML(views.status(snapshot.get(), latest.get(), stale()))

        @render.ui
        def changes():
            resolved, grid, _ = state()
            if resolved is None or grid is None:
                return ""
            return ui.HTML(views.changes_html(resolved.overrides, resolved.labels, str(path.get()), grid.n_text(),
                                              grid.reps, grid.seed))

        @render.ui
        def power():
            return ui.HTML(views.power_plot(drawn.get()))

        @render.ui
        def required():
            return ui.HTML(views.required_html(snapshot.get()))

        @render.ui
        def table():
            return ui.HTML(views.oc_table(snapshot.get()))

        @render.ui
        def funnel():
            return ui.HTML(views.funnel_plot(drawn.get()))

        def save_current() -> Path | None:
            resolved, grid, errors = state()
            if errors or resolved is None or resolved.scenario is None or grid is None:
                kept_message.set("Nothing saved: fix the value marked in red first.")
                return None
            try:
                saved = save_scenario(path.get(), config.out, resolved.scenario, resolved.overrides,
                                      input.save_name(), resolved.labels, grid)
            except InputError as exc:
                kept_message.set(f"Nothing saved: {exc}")
                return None
            label = f"{saved.name} ({saved.parent})"
            config.library[label] = saved
            ui.update_select("scenario", choices=list(config.library), selected=input.scenario())
            command = (f"python run_sim.py sweep --scenario {saved} --n {grid.n_text()} --reps {grid.reps} "
                       f"--seed {grid.seed} --endpoints primary")
            kept_message.set(f'Saved <code id="saved-path">{html.escape(str(saved))}</code>. The command line '
                             f"reproduces these numbers: <code>{html.escape(command)}</code>")
            return saved

        @reactive.effect
        @reactive.event(input.save)
        def _save() -> None:
            save_current()

        @reactive.effect
        @reactive.event(input.report)
        def _report() -> None:
            if config.sweep_command is None:
                kept_message.set("Reports are written when the explorer is started with run_sim.py explore.")
                return
            running = job.get()
            if running is not None and running.state() == "running":
                kept_message.set("A report is being written already; wait for it to finish.")
                return
            saved = save_current()
            if saved is None:
                return
            grid = state()[1]
            out = config.out / f"{saved.stem}-report"
            new = start_report(config.sweep_command, saved, grid, out)
            config.jobs.append(new)
            job.set(new)

        @render.ui
        def kept():
            text = kept_message.get()
            running = job.get()
            if running is not None:
                st = running.state()
                if st == "running":
                    reactive.invalidate_later(1.0)
                    text += (f"<p>Writing the report with the sweep command ({time.time() - running.started:.0f} s "
                             "so far; about a minute per 2,000 trials)...</p>")
                elif st == "done":
                    rel = (running.out / "report.html").relative_to(config.out).as_posix()
                    text += (f'<p>Report written: <a id="report-link" href="kept/{html.escape(rel)}" '
                             f'target="_blank">{html.escape(str(running.out / "report.html"))}</a></p>')
                else:
                    text += (f'<p class="error">The report could not be written:\n'
                             f"{html.escape(running.last_lines())}</p>")
            return ui.HTML(text)

    app = App(page(), server, static_assets={"/kept": str(config.out.resolve())})
    app.sanitize_errors = True
    return app


def _control_outputs(control, output, loaded, version, state) -> None:
    @output(id=f"ctl_{control.name}")
    @render.ui
    def _slider():
        scenario, sources, _ = loaded()
        if scenario is None:
            return ""
        return control_ui(control, scenario, version.get(), sources)

    _error_output(control.name, output, state)


def _error_output(name: str, output, state, extra: reactive.Value | None = None) -> None:
    @output(id=f"err_{name}")
    @render.ui
    def _error():
        message = state()[2].get(name, "")
        if extra is not None and extra.get():
            message = f"{message}\n{extra.get()}".strip()
        if not message:
            return ""
        return ui.div(message, class_="error", id=f"error-{name}")


# --------------------------------------------------------------------------- running it


def free_port(host: str) -> int:
    """A port nobody listens on (for --port 0)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def check_port(host: str, port: int) -> None:
    """InputError when the address cannot be listened on (in use, or not this machine's)."""
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); choose another "
                             "--port") from None


def serve(scenario: Path, host: str, port: int, out: Path, grid: Grid, workers: int,
          sweep_command: list[str] | None, library_folders: tuple[Path, ...] = (Path("scenarios"),),
          say=print) -> int:
    """Run the explorer until Ctrl-C; then stop the pool and any report still being written."""
    import uvicorn

    load_scenario(scenario)            # a bad file stops here, with the command line's message
    port = free_port(host) if port == 0 else port
    check_port(host, port)
    out.mkdir(parents=True, exist_ok=True)
    library = scenario_library(scenario, tuple(f for f in (*library_folders, out) if f.is_dir()))
    say(f"Starting {workers} simulation worker(s)...")
    pool = process_pool(workers)
    config = Config(scenario, library, out, grid, pool, workers, sweep_command)
    shown = f"[{host}]" if ":" in host else host
    say(f"What-if explorer: open http://{shown}:{port}/ in a browser (Ctrl-C stops it). "
        f"Saved scenarios and reports go to {out}/")
    if host not in ("127.0.0.1", "localhost", "::1"):
        say(f"WARNING: listening on {host}: anyone who can reach this machine on port {port} can use the explorer "
            f"and read {out}/ (saved scenarios and reports). There is no password; share it on a trusted network "
            "only.")
    try:
        uvicorn.run(make_app(config), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2,
                    ws_max_size=1 << 20)
    finally:
        for job in config.jobs:
            job.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        say("Explorer stopped.")
    return 0
