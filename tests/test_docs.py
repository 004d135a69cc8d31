"""The documents tell the truth about the code: every variable the processes read is in the
configuration reference, and every link between the documents leads somewhere."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench" / "README.md"]
READS = re.compile(r"""(?:env\.get|environ\.get|getenv|_int|_float|_bool|_text_or_file)\(\s*(?:env,\s*)?["']([A-Z][A-Z0-9_]+)["']""")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def variables_read() -> set[str]:
    names = set()
    for path in [ROOT / "scoreboard" / "settings.py", *sorted((ROOT / "web").glob("*gunicorn_conf.py"))]:
        names |= set(READS.findall(path.read_text()))
    return names - {"PROMETHEUS_MULTIPROC_DIR_PARENT"}


def test_every_variable_the_processes_read_is_documented():
    documented = (ROOT / "docs" / "configuration.md").read_text()
    names = variables_read()
    assert {"DATABASE_URL", "BOARDS", "STREAM_MAX_ANONYMOUS_PER_ADDRESS", "WEB_CONCURRENCY"} <= names
    missing = sorted(n for n in names if f"`{n}`" not in documented)
    assert missing == [], f"read by the code but not in docs/configuration.md: {missing}"


def anchors(path: Path) -> set[str]:
    out = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^a-z0-9 _-]", "", title).replace(" ", "-"))
    return out


def test_links_between_the_documents_lead_somewhere_inside_the_repository():
    broken = []
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            where = (doc.parent / file).resolve() if file else doc
            if not str(where).startswith(str(ROOT)) or not where.exists():
                broken.append(f"{doc.name}: {target}")
            elif anchor and where.suffix == ".md" and anchor not in anchors(where):
                broken.append(f"{doc.name}: {target} (no such heading)")
    assert broken == []
