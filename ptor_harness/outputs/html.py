"""report.html: the run in one self-contained file a DBA can attach to a change ticket or
a DR-test record and open anywhere, printed or on screen.

Nothing in it is fetched: the styles are inline, the timeline picture is embedded as a
data URI, and the page's own Content-Security-Policy forbids every request, so opening
it reaches no network. Every text is escaped; the report it is made from is already
masked (outputs/report.py), so no secret reaches it either.
"""

from __future__ import annotations

import base64
import html
import platform
from typing import Optional

from .account import no_standby
from .anatomy_text import later_title, outage_split
from .event_time import event_when
from .render import (
    BACKGROUND_HEADERS,
    BACKGROUND_TITLE,
    EXAMPLES_HEADERS,
    FAULTS_HEADERS,
    MOVES_HEADERS,
    WINDOWS_HEADERS,
    WINDOWS_TITLE,
    WORKERS_HEADERS,
    background_rows,
    cdc_rows,
    examples_rows,
    faults_rows,
    from_warmup,
    moves_rows,
    server_rows,
    summary_rows,
    validation_rows,
    wal_share_said,
    windows_rows,
    workers_rows,
)
from .scenario_text import scenario_entries

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 60em;
       color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em;
     border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
.verdict { font-weight: bold; padding: 0.1em 0.5em; border-radius: 0.2em; color: #fff; }
.pass { background: #2ca02c; } .fail { background: #d62728; } .unknown { background: #888; }
.account p { margin: 0.3em 0; }
img { max-width: 100%; }
@media print { body { margin: 0; max-width: none; } h2 { break-after: avoid; }
               table, img { break-inside: avoid; } }
"""


class Markup(str):
    """HTML already made safe (built from escaped parts): a table cell holding a link."""


def esc(value) -> str:
    if isinstance(value, Markup):
        return value
    return html.escape("-" if value is None else str(value))


def link(href: str, text) -> Markup:
    """A relative link, its target and text escaped."""
    return Markup(f"<a href='{esc(href)}'>{esc(text)}</a>")


def table(rows: list, headers: Optional[list] = None) -> str:
    head = "" if not headers else \
        "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table>{head}{body}</table>"


def section(title: str, content: str) -> str:
    return f"<h2>{esc(title)}</h2>{content}" if content else ""


def picture_section(title: str, alt: str, picture: Optional[bytes]) -> str:
    """A PNG inside the page, as a data URI (the page fetches nothing)."""
    if not picture:
        return ""
    encoded = base64.b64encode(picture).decode("ascii")
    return section(title, f"<img alt='{esc(alt)}' src='data:image/png;base64,{encoded}'>")


def page(title: str, verdict: Optional[str], parts: list[str]) -> str:
    """One self-contained page: the title with the verdict's badge, then `parts` (HTML
    already escaped), under the policy that forbids every request."""
    verdict = verdict or "unknown"
    heading = (f"<h1>{esc(title)} <span class='verdict {esc(verdict)}'>"
               f"{esc(verdict.upper())}</span></h1>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<title>{esc(title)}: {esc(verdict.upper())}</title>"
            f"<style>{STYLE}</style></head><body>" + heading + "".join(parts) +
            "</body></html>\n")


def checks_table(checks: Optional[list]) -> str:
    return table([[c["name"], c["status"], c["detail"]] for c in checks or []],
                 ["check", "status", "detail"])


def report_html(r: dict, picture: Optional[bytes] = None) -> str:
    """The whole page for one run's report; `picture`: timeline.png's bytes, if drawn."""
    parts = []
    if r.get("account"):
        parts.append(section("What happened", "<div class='account'>" + "".join(
            f"<p>{esc(sentence)}</p>" for sentence in r["account"]) + "</div>"))
    parts.append(section("Checks", checks_table(r.get("checks"))))
    parts.append(section("Summary", table(summary_rows(r))))
    parts.append(section("Servers", servers(r)))
    rel = from_warmup(r)
    parts.append(section("Faults (seconds from the start of the warmup)", table(
        faults_rows(r, rel), FAULTS_HEADERS) if r.get("faults") else ""))
    parts.append(picture_section("Timeline", "timeline of the drill", picture))
    parts.append(anatomy(r))
    parts.append(section(WINDOWS_TITLE, table(windows_rows(r, rel), WINDOWS_HEADERS)
                         if r.get("windows") else ""))
    parts.append(loss(r))
    parts.append(section("Validation", table(validation_rows(r))))
    parts.append(cdc(r))
    parts.append(background(r.get("background")))
    parts.append(section("Workers", table(workers_rows(r), WORKERS_HEADERS)))
    parts.append(section("Warnings", "<ul>" + "".join(
        f"<li>{esc(w)}</li>" for w in r.get("warnings") or []) + "</ul>"
        if r.get("warnings") else ""))
    parts.append(scenario_section(r.get("scenario")))
    host = r.get("host") or {}
    parts.append(section("Where it ran", table([
        ["ptor", host.get("ptor_version")],
        ["PostgreSQL (the primary before the fault)",
         (r.get("servers") or {}).get("postgres_version")], ["host", host.get("name")],
        ["Python", host.get("python")], ["report format", r.get("format")],
        ["run folder", r.get("run_dir")]])))
    return page(f"ptor drill {r['run_id']}", r["verdict"], parts)


def scenario_section(scenario: Optional[dict]) -> str:
    """The scenario in the words of its INI file (the run folder's scenario.ini)."""
    return section("Scenario (passwords masked)", table(
        [list(entry) for entry in scenario_entries(scenario or {})], ["option", "value"]))


def servers(r: dict) -> str:
    """The primary before and after, and each move of the primary the workers followed
    (times from the warmup's start, as the terminal shows them)."""
    moves = r["servers"].get("primary_moves") or []
    content = table(server_rows(r))
    if moves:
        content += ("<p>Primary changes seen by the workers (seconds from the start of the "
                    "warmup)</p>") + \
            table(moves_rows(moves, from_warmup(r)), MOVES_HEADERS)
    return content


def since_fault(e: dict) -> tuple[str, str]:
    """An anatomy event's time from the fault, and its detail (event_time.event_when)."""
    since = e.get("seconds_after_fault")
    if since is None:
        return "-", e.get("detail") or ""
    return event_when(e, lambda t: f"{since + t - e['at']:+.3f} s")


def events_and_split(a: dict) -> str:
    """An anatomy's events and its write outage by part."""
    events = [[e["name"], when, e["source"], detail] for e in a.get("events") or []
              for when, detail in [since_fault(e)]]
    if not events:
        return ""
    return table(events, ["event", "from the fault", "source", "detail"]) + \
        f"<p>{esc(outage_split(a))}</p>"


def anatomy(r: dict) -> str:
    a = r.get("anatomy") or {}
    rows = [[x["standby"], x["seen_by"], x.get("sync_state"), x.get("flushed_bytes_behind"),
             x.get("replayed_bytes_behind")] for x in a.get("replication_at_fault") or []]
    alone = no_standby(r)
    content = events_and_split(a)
    if rows:
        content += table(rows, ["standby", "seen by", "sync", "flushed bytes behind",
                                "replayed bytes behind"])
    if alone:
        content += f"<p>{esc(alone)}</p>"
    for later in a.get("later_outages") or []:
        content += f"<p>{esc(later_title(later, from_warmup(r)))}</p>" + \
            events_and_split(later)
    return section("Failover anatomy", content)


def words(key: Optional[str]) -> str:
    """A report key as words ("asynchronous_lag": "asynchronous lag")."""
    return (key or "").replace("_", " ")


def loss(r: dict) -> str:
    rpo = r["rpo"]
    if rpo.get("lost_acknowledged_ops") is None:
        return section("Loss", "<p>Not validated: " + esc(r["validation"].get("error")) +
                       "</p>")
    rows = [["lost acknowledged ops", f"{rpo['lost_acknowledged_ops']:,}"]]
    for label, key in (("by kind", "lost_by_kind"), ("by cause", "lost_by_cause"),
                       ("found by", "lost_by_evidence")):
        rows += [[f"{label}: {words(k)}", f"{n:,}"] for k, n in (rpo.get(key) or {}).items()
                 if n]
    examples = examples_rows(r, from_warmup(r))
    return section("Loss", table(rows) + (table(examples, [
        *EXAMPLES_HEADERS[:4], "acknowledged at (from the warmup's start)",
        *EXAMPLES_HEADERS[5:]]) if examples else ""))


def background(section_: Optional[dict]) -> str:
    """The background load's commands, and ptor's share of the WAL beside them."""
    if not section_ or not section_["commands"]:
        return ""
    share = wal_share_said(section_)
    return section(BACKGROUND_TITLE, table(background_rows(section_), BACKGROUND_HEADERS) +
                   (f"<p>{esc(share)}</p>" if share else ""))


def cdc(r: dict) -> str:
    c = r.get("cdc")
    if not c:
        return ""
    return section(f"Change data capture (slot {c['slot']}, {c['plugin']})",
                   table(cdc_rows(c)))


def host_facts() -> dict:
    """Where the report was made: ptor's version, the host, Python (the report's `host`)."""
    from ..config.options import package_version

    return {"name": platform.node(), "ptor_version": package_version(),
            "python": platform.python_version()}
