#!/usr/bin/env python3
"""Scan the repository for secrets that must never be committed.

Two layers, one report:

``detect-secrets:<type>``
    Yelp's maintained scanner (``detect-secrets``, pinned in requirements-dev.txt) with its default
    detectors: private keys, AWS/Azure/GitHub/... keys, passwords in URLs (basic auth), high-entropy
    strings, ``password = ...`` keywords (outside YAML, where ``yaml-secret`` owns them), JWTs and more.
    Known false positives (throwaway passwords in tests) live in the committed baseline
    ``.secrets.baseline``; every entry there must be audited (``"is_secret": false``). Update it with
    ``detect-secrets scan --baseline .secrets.baseline $(git ls-files)`` then ``detect-secrets audit
    .secrets.baseline``. The baseline is only read here, never rewritten.
``private-key``
    An encrypted PKCS#8 private key block (``BEGIN ENCRYPTED PRIVATE KEY`` between five dashes), which
    detect-secrets 1.5 does not detect, in any file.
``yaml-secret``
    The Ansible rule no maintained scanner checks (detect-secrets sees one ``key: value`` line at a
    time and cannot tell a vault reference or a nested mapping of per-client passwords). In
    ``*.yml``/``*.yaml``: a literal value of a variable named ``vault_*`` or containing ``password``,
    ``passwd``, ``secret`` or ``token`` (case-insensitive), or of anything nested under such a variable
    (a mapping of per-client passwords, a list of tokens). These values are fine, everything else is a
    finding:

    - a reference: the value contains ``{{`` (e.g. ``"{{ vault_mqtt_password }}"``);
    - vaulted: ``!vault |`` or a ``$ANSIBLE_VAULT`` blob;
    - no value: empty, ``null``, ``~``, ``''``, ``""``, or a nested mapping/list (checked item by item);
    - not a string: ``true``/``false``/``yes``/``no``, numbers (``password_min_length: 12``,
      ``token_ttl: 3600``); a purely numeric password is therefore not caught;
    - placeholders, the whole value being one of ``CHANGE_ME``/``CHANGEME``/``REPLACE_ME``/
      ``PLACEHOLDER``/``REDACTED``/``TODO`` (any case, ``-`` or ``_``), ``xxx...``, ``***...``,
      ``<anything in angle brackets>``, or ``!``/``*`` (the locked-password markers of
      ``ansible.builtin.user``). A placeholder is not a leak; roles must still refuse to deploy
      one (preflight assert), which this scanner does not check;
    - variables (not ``vault_*``) whose name ends in ``_file``, ``_path``, ``_dir``, ``_mode``,
      ``_owner``, ``_group``, ``_length``, ``_ttl``, ``_type``, ``_name``, ``_user``, ``_enabled``:
      these name a path, a setting or an account, not the secret itself
      (``mosquitto_password_file: /etc/mosquitto/passwd``).

    In ``meta/`` files (argument specs) only ``default:`` values under such options are checked.

Files scanned: everything git tracks plus untracked files git does not ignore
(``git ls-files --cached --others --exclude-standard``). Binary files, files larger than 2 MB and
files that are entirely ansible-vault encrypted are skipped.

Allow-list for our rules: ``.secrets-allowlist`` at the repository root, one entry a line::

    <path glob> <rule>[:<variable>] <justification, required>

Entries without a justification are errors; entries that match nothing are reported as stale (warning).
Findings print as ``path:line: rule: what`` with the value redacted; the exit status is 1 when there are
findings (or a bad allow-list or baseline), 0 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ALLOWLIST_NAME = ".secrets-allowlist"
MAX_BYTES = 2 * 1024 * 1024
BASELINE_NAME = ".secrets.baseline"
RULES = ("private-key", "yaml-secret")

# detect-secrets 1.5 knows RSA/EC/DSA/OPENSSH/PGP/plain PKCS#8 keys but not encrypted PKCS#8, the form
# `openssl genpkey -aes256` and community.crypto write with a passphrase.
ENCRYPTED_KEY_RE = re.compile(r"-{5}BEGIN ENCRYPTED PRIVATE KEY-{5}")

YAML_KEY_RE = re.compile(
    r"^(?P<indent>\s*)(?:-\s+)?(?P<quote>[\"']?)(?P<key>[A-Za-z0-9_.$-]+)(?P=quote)\s*:(?:\s+(?P<value>.*?))?\s*$"
)
YAML_ITEM_RE = re.compile(r"^(?P<indent>\s*)-\s+(?P<value>.+?)\s*$")
IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_NAME_RE = re.compile(r"^vault_|password|passwd|secret|token", re.IGNORECASE)
NOT_THE_SECRET_RE = re.compile(
    r"_(?:file|path|dir|mode|owner|group|length|ttl|type|name|user|enabled)$", re.IGNORECASE
)
PLACEHOLDER_RE = re.compile(
    r"^(?:change[_-]?me|replace[_-]?me|placeholder|redacted|todo|x{3,}|\*{3,}|<[^<>]+>|!|\*)$", re.IGNORECASE
)
NON_STRING_RE = re.compile(r"^(?:true|false|yes|no|on|off|null|~|-?\d+(?:\.\d+)?)$", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    variable: str
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.what}"


@dataclass
class AllowEntry:
    pattern: str
    rule: str
    variable: str | None
    reason: str
    lineno: int
    used: bool = False

    def matches(self, finding: Finding) -> bool:
        return (
            fnmatch.fnmatch(finding.path, self.pattern)
            and finding.rule == self.rule
            and (self.variable is None or self.variable == finding.variable)
        )


def redact(value: str) -> str:
    return f"value redacted, {len(value)} chars"


def is_template(value: str) -> bool:
    return "{{" in value or "${" in value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return re.sub(r"\s+#.*$", "", value)  # plain scalar: drop a trailing comment


def _acceptable_yaml_value(value: str) -> bool:
    if value in ("", "''", '""') or value.startswith("#"):
        return True
    if value.startswith("!vault") or "$ANSIBLE_VAULT" in value:
        return True
    if value[0] in "{[&*":  # flow collection, anchor or alias: not a literal secret on this line
        return True
    plain = _unquote(value)
    return is_template(plain) or bool(NON_STRING_RE.match(plain)) or bool(PLACEHOLDER_RE.match(plain.strip()))


def scan_yaml(path: str, lines: list[str]) -> list[Finding]:
    findings = []
    meta_file = "/meta/" in f"/{path}"
    stack: list[tuple[int, str]] = []  # (indent, key) of the enclosing mapping keys
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key_match = YAML_KEY_RE.match(line)
        item_match = None if key_match else YAML_ITEM_RE.match(line)
        match = key_match or item_match
        if not match:
            continue
        indent = len(match.group("indent"))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = key_match.group("key") if key_match else ""
        value = (match.group("value") or "").strip()
        secret_ancestor = next((k for _, k in reversed(stack) if _is_secret_name(k)), None)
        if key_match:
            stack.append((indent, key))
        variable = key if key and _is_secret_name(key) else secret_ancestor
        if variable is None or (meta_file and key != "default"):
            continue
        if value[:1] in ("|", ">"):  # block scalar: the value is on the following, deeper lines
            block = []
            while i < len(lines) and (
                not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent
            ):
                block.append(lines[i].strip())
                i += 1
            text = "\n".join(b for b in block if b)
            if not text or text.startswith("$ANSIBLE_VAULT") or is_template(text):
                continue
            findings.append(Finding(path, i - len(block) + 1, "yaml-secret", variable, _what(variable, text)))
            continue
        if _acceptable_yaml_value(value):
            continue
        findings.append(Finding(path, i, "yaml-secret", variable, _what(variable, _unquote(value))))
    return findings


def _is_secret_name(name: str) -> bool:
    if not IDENTIFIER_RE.match(name):  # "prohibit-password", "ZAM-WELD": mapping keys, not variables
        return False
    if name.lower().startswith("vault_"):
        return True
    return bool(SECRET_NAME_RE.search(name)) and not NOT_THE_SECRET_RE.search(name)


def _what(variable: str, value: str) -> str:
    return f"literal value for {variable} ({redact(value)}); vault it or reference a vault_* variable"


def scan_text(path: str, text: str) -> list[Finding]:
    """Our rules' findings in one file (generic secrets are detect-secrets' job)."""
    lines = text.splitlines()
    findings = [
        Finding(path, number, "private-key", "", "encrypted private key block")
        for number, line in enumerate(lines, 1)
        if ENCRYPTED_KEY_RE.search(line)
    ]
    if path.endswith((".yml", ".yaml")):
        findings.extend(scan_yaml(path, lines))
    return findings


def detect_secrets_findings(root: Path, files: list[str]) -> tuple[list[Finding], list[str]]:
    """detect-secrets over ``files`` minus the audited baseline; (findings, baseline errors)."""
    # Imported here: the Ansible rule and its tests do not need the library.
    from detect_secrets import SecretsCollection
    from detect_secrets.core import baseline
    from detect_secrets.settings import default_settings

    errors: list[str] = []
    path = root / BASELINE_NAME
    known = SecretsCollection()
    with default_settings():
        if path.is_file():
            data = baseline.load_from_file(str(path))
            known = baseline.load(data, str(path))  # also applies the baseline's plugins and filters
            for name, entries in data.get("results", {}).items():
                for entry in entries:
                    if entry.get("is_secret") is not False:
                        errors.append(
                            f"{BASELINE_NAME}: {name}:{entry.get('line_number')} {entry.get('type')} is not "
                            "audited as a false positive; run `detect-secrets audit .secrets.baseline`"
                        )
        # Scanned from the root: detect-secrets compares a finding with the baseline by its path as given.
        found = SecretsCollection()
        with contextlib.chdir(root):
            for name in files:
                if name not in (ALLOWLIST_NAME, BASELINE_NAME) and read_text(root / name) is not None:
                    found.scan_file(name)
        new = found - known
    findings = [
        Finding(
            name,
            secret.line_number or 0,
            f"detect-secrets:{secret.type}",
            "",
            f"{secret.type} (value redacted)",
        )
        for name, secret in new
        # In YAML, secret-named variables are yaml-secret's: it knows vault references, placeholders and
        # nested mappings, where the keyword detector flags `password: CHANGE_ME`, misses `passwords: {a: x}`.
        if not (secret.type == "Secret Keyword" and name.endswith((".yml", ".yaml")))
    ]
    return sorted(findings, key=lambda f: (f.path, f.line, f.rule)), errors


def git_files(root: Path) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
    ).stdout
    return sorted({name for name in out.decode("utf-8", "surrogateescape").split("\0") if name})


def read_text(path: Path) -> str | None:
    """The file's text, or None when it is not worth scanning (gone, binary, huge, fully vaulted)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    text = data.decode("utf-8", "replace")
    if text.lstrip().startswith("$ANSIBLE_VAULT;"):
        return None
    return text


def load_allowlist(path: Path) -> tuple[list[AllowEntry], list[str]]:
    entries: list[AllowEntry] = []
    errors: list[str] = []
    if not path.is_file():
        return entries, errors
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 2)
        if len(parts) < 3 or not parts[2].strip():
            errors.append(
                f"{path.name}:{number}: entry needs '<path glob> <rule>[:<variable>] <justification>'"
            )
            continue
        rule, _, variable = parts[1].partition(":")
        if rule not in RULES:
            errors.append(f"{path.name}:{number}: unknown rule {rule!r} (one of {', '.join(RULES)})")
            continue
        entries.append(AllowEntry(parts[0], rule, variable or None, parts[2].strip(), number))
    return entries, errors


def scan(root: Path, files: list[str] | None = None) -> tuple[list[Finding], list[str], list[AllowEntry]]:
    """(findings not allow-listed or baselined, allow-list and baseline errors, stale allow-list entries)."""
    allow, errors = load_allowlist(root / ALLOWLIST_NAME)
    names = git_files(root) if files is None else files
    findings, baseline_errors = detect_secrets_findings(root, names)
    errors.extend(baseline_errors)
    for name in names:
        text = read_text(root / name)
        if text is None:
            continue
        for finding in scan_text(name, text):
            entry = next((e for e in allow if e.matches(finding)), None)
            if entry:
                entry.used = True
            else:
                findings.append(finding)
    return findings, errors, [e for e in allow if not e.used]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root", type=Path, default=None, help="repository root (default: git toplevel of cwd)"
    )
    args = parser.parse_args(argv)
    root = args.root
    if root is None:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        )
        root = Path(top.stdout.strip())

    findings, errors, stale = scan(root)
    for finding in findings:
        print(finding)
    for error in errors:
        print(error)
    for entry in stale:
        print(
            f"warning: {ALLOWLIST_NAME}:{entry.lineno}: matches nothing (stale): {entry.pattern} {entry.rule}"
        )
    if findings or errors:
        print(
            f"scan_secrets: {len(findings)} finding(s), {len(errors)} allow-list/baseline error(s); "
            f"see the rules in {Path(__file__).name} and docs"
        )
        return 1
    print("scan_secrets: no secrets found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
