"""`corral models pull` and `corral models search`: the commands that talk to the Hugging Face hub.

    corral models pull CATALOG_ID [--quant Q]      a model from Corral's catalog
    corral models pull REPO_ID FILE                any GGUF file on the hub
    corral models search QUERY [--sort downloads|likes|recent] [--limit N] [--files]

pull shows a progress bar on stderr; Ctrl+C pauses (the partial file is kept) and running the same
command again resumes. The file's GGUF header is checked on the hub first and the file is verified
(size and sha256) before it enters the models folder: both in the download manager (app.core), so
the window does exactly the same. A pull of a file another Corral process is downloading follows
that download to its end. Hub calls that stall or drop are retried, with a line saying so.
"""

from __future__ import annotations

import sys
import threading
import time

from app.cli._common import CliError

BAR_WIDTH = 24
REDRAW_EVERY = 0.1  # seconds between progress bar redraws


def register(models_sub) -> None:
    p = models_sub.add_parser(
        "pull", help="download a model from the catalog or the Hugging Face hub (Ctrl+C pauses)",
        description="Download a GGUF model into the models folder, verified against the hub's sha256. "
                    "Ctrl+C pauses; run the same command again to resume where it stopped.")
    p.add_argument("target", metavar="CATALOG_ID|REPO_ID", help="a catalog id, or a hub repository id")
    p.add_argument("file", metavar="FILE", nargs="?", help="the .gguf file in REPO_ID")
    p.add_argument("--quant", help="with a catalog id: this quantization instead of the default")
    p.add_argument("--revision", default="main", help="branch, tag or commit (default: main)")
    p.add_argument("--no-check", action="store_true",
                   help="skip reading the file's GGUF header from the hub before downloading")
    p.set_defaults(func=cmd_pull)

    s = models_sub.add_parser("search", help="search the Hugging Face hub for GGUF models")
    s.add_argument("query", metavar="QUERY")
    s.add_argument("--sort", choices=("downloads", "likes", "recent"), default="downloads")
    s.add_argument("--limit", type=int, default=20, metavar="N")
    s.add_argument("--files", action="store_true", help="also list each repository's GGUF files")
    s.set_defaults(func=cmd_search)


def _hub():
    from app.core.hub import client_for
    from app.core.settings import SettingsError, load_settings
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise CliError(str(exc)) from None
    return client_for(settings, on_retry=lambda text: print(f"corral: {text}", file=sys.stderr, flush=True)), \
        settings


def _resolve(args) -> tuple[str, str, int | None, str | None]:
    """(repo, file, size, sha256) for the pull arguments; size/sha256 when the catalog knows them."""
    try:
        from app.core.catalog import CatalogError, load_catalog
    except ImportError:
        load_catalog = None
    if args.file:
        if load_catalog is not None:
            found = load_catalog().find_file(args.target, args.file)
            if found:
                return args.target, args.file, found[1].size, found[1].sha256
        return args.target, args.file, None, None
    if "/" in args.target or load_catalog is None:
        raise CliError(f"which file of {args.target}? Use: corral models pull REPO_ID FILE "
                       f"(list them with: corral models search {args.target} --files)", exit_code=2)
    try:
        entry = load_catalog().get(args.target)
    except CatalogError as exc:
        raise CliError(str(exc)) from None
    if not entry.available or not entry.file:
        hint = f"; try {entry.alternative}" if entry.alternative else ""
        raise CliError(f"{entry.id} cannot be downloaded: {entry.unavailable_reason or 'no GGUF file'}{hint}")
    if args.quant:
        chosen = entry.file_for(args.quant)
        if chosen is None:
            raise CliError(f"{entry.id} has no {args.quant} file (it has: {', '.join(entry.quants)})")
        return entry.repo, chosen.file, chosen.size, chosen.sha256
    return entry.repo, entry.file, entry.size, entry.sha256


def cmd_pull(args) -> int:
    from app.core.downloads import (DONE, FAILED, PAUSED, AlreadyDownloaded, DownloadError, DownloadManager,
                                    verified_text)
    from app.core.library import register_download
    from app.core.memory_plan import format_bytes
    from app.core.paths import get_paths

    repo, filename, size, sha256 = _resolve(args)
    hub, settings = _hub()
    models_dir = settings.effective_models_dir()
    models_dir.mkdir(parents=True, exist_ok=True)
    paths = get_paths()
    bar = ProgressBar(filename)
    manager = DownloadManager(models_dir, paths.downloads / "queue.json", hub, on_event=bar.update,
                              on_complete=lambda path, _job: register_download(models_dir, path))
    for note in manager.notices:
        print(f"corral: {note}", file=sys.stderr)  # one line, as every other notice
    told = len(manager.notices)
    try:
        job = manager.enqueue(repo, filename, revision=args.revision, size=size, sha256=sha256,
                              check=not args.no_check)
    except AlreadyDownloaded as exc:
        print(f"Already downloaded: {exc.path}")
        return 0
    except DownloadError as exc:
        raise CliError(str(exc)) from None
    if job.bytes_done and job.state not in ("downloading", "verifying"):
        print(f"Resuming {filename} from {format_bytes(job.bytes_done)}", file=sys.stderr)
    started = time.monotonic()
    manager.start([job.id])
    followed = False
    try:
        while True:  # short waits keep Ctrl+C responsive
            if not followed and not manager.runs(job.id) and manager.get(job.id).state in ("downloading",
                                                                                          "verifying"):
                followed = True
                print(f"{filename} is being downloaded by another Corral process (the window or another "
                      "pull); waiting for it to finish (Ctrl+C stops waiting).", file=sys.stderr)
            try:
                job = manager.wait(job.id, {DONE, FAILED, PAUSED}, timeout=0.5)
                break
            except TimeoutError:
                continue
    except KeyboardInterrupt:
        if not manager.runs(job.id) and manager.get(job.id).state in ("downloading", "verifying"):
            manager.shutdown()
            bar.finish()
            print(f"Stopped waiting; the other Corral process goes on downloading {filename}.", file=sys.stderr)
            return 130
        try:
            manager.pause(job.id)
        except DownloadError:
            pass
        job = manager.wait(job.id, {DONE, FAILED, PAUSED}, timeout=manager.stall_timeout + 10)
        manager.shutdown()
        bar.finish()
        if job.state == PAUSED:
            print(f"Paused at {format_bytes(job.bytes_done)}; run the same command again to resume.",
                  file=sys.stderr)
            return 130
    manager.shutdown()
    bar.finish()
    for note in manager.notices[told:]:  # e.g. the queue could not be saved
        print(f"corral: {note}", file=sys.stderr)
    if job.state == PAUSED:
        raise CliError(f"{filename} was paused by another Corral process"
                       + (f" ({job.message})" if job.message and job.message != "paused" else "")
                       + "; run the same command again to resume it.")
    if job.state != DONE:
        raise CliError(job.message or f"download {job.state}")
    if job.verified == "existing":
        print(f"Already downloaded: {job.path}")
        return 0
    if followed:
        print(f"Downloaded by another Corral process: {filename}; {verified_text(job) or 'done'}",
              file=sys.stderr)
        print(job.path)
        return 0
    elapsed = max(time.monotonic() - started, 1e-6)
    got = job.bytes_done or job.size or 0
    extra = [t for t in (verified_text(job), job.message) if t]
    print(f"Downloaded {filename} ({format_bytes(got)} in {elapsed:.1f} s, {format_bytes(got / elapsed)}/s)"
          + "".join(f"; {t}" for t in dict.fromkeys(extra)), file=sys.stderr)
    print(job.path)
    return 0


class ProgressBar:
    """A one-line progress bar on stderr; update() is called from download worker threads."""

    def __init__(self, name: str, stream=None):
        self.name = name
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._lock = threading.Lock()
        self._last = 0.0
        self._last_tenth = -1
        self._drawn = False

    def update(self, event) -> None:
        from app.core.memory_plan import format_bytes
        job = event.job
        if event.kind == "state":
            if job.message and job.state in ("downloading", "verifying"):
                self._line(job.message)
            return
        now = time.monotonic()
        with self._lock:
            if now - self._last < REDRAW_EVERY:
                return
            self._last = now
            frac = event.fraction or 0.0
            filled = int(frac * BAR_WIDTH)
            eta = "--:--" if event.eta is None else _clock(event.eta)
            text = (f"{frac:4.0%} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] "
                    f"{format_bytes(job.bytes_done)} / {format_bytes(job.size) if job.size else '?'}  "
                    f"{format_bytes(event.speed or 0)}/s  ETA {eta}")
            if self.tty:
                self.stream.write("\r" + text.ljust(78))
                self._drawn = True
            elif int(frac * 10) > self._last_tenth:  # a log line every 10% when not a terminal
                self._last_tenth = int(frac * 10)
                self.stream.write(text + "\n")
            self.stream.flush()

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(("\n" if self._drawn else "") + text + "\n")
            self._drawn = False
            self.stream.flush()

    def finish(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\n")
                self._drawn = False
            self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    return f"{h}:{rem // 60:02d}:{rem % 60:02d}" if h else f"{rem // 60}:{rem % 60:02d}"


def cmd_search(args) -> int:
    from app.core.hub import HubError
    from app.core.memory_plan import format_bytes

    if args.limit < 1:
        raise CliError("--limit must be at least 1", exit_code=2)
    hub, _ = _hub()
    try:
        found = hub.search(args.query, sort=args.sort, limit=args.limit)
    except HubError as exc:
        raise CliError(str(exc)) from None
    if not found:
        print(f"No GGUF models on the hub match {args.query!r}.")
        return 0
    from app.cli.models_cmd import _table
    rows = [[r.repo_id, f"{r.downloads:,}", f"{r.likes:,}",
             r.last_modified.strftime("%Y-%m-%d") if r.last_modified else "-", "gated" if r.gated else ""]
            for r in found]
    print(_table(rows, ["REPOSITORY", "DOWNLOADS", "LIKES", "UPDATED", ""]))
    for repo in found if args.files else ():
        print(f"\n{repo.repo_id}:")
        try:
            files = hub.list_gguf_files(repo.repo_id)
        except HubError as exc:
            print(f"  ({exc})")
            continue
        for f in files or ():
            print(f"  {f.filename}  {format_bytes(f.size)}")
        if not files:
            print("  (no .gguf files)")
    print("\nDownload one with: corral models pull REPO_ID FILE", file=sys.stderr)
    return 0
