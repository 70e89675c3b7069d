"""The README's proxy example never logs a secret (issue 17): http.php carries the password in its query
string and a reset link its token in the path, so the access log it sets up logs neither (nginx's default
`combined` format logs `$request`, the whole request line)."""

from __future__ import annotations

import re

from engine.settings import PROJECT_ROOT

# Whatever nginx would write from the query string, the raw request line or the headers of a request.
_SECRET_VARIABLES = re.compile(
    r"\$(?:request|request_uri|args|query_string|arg_\w+|http_authorization|http_cookie|request_body)\b"
)


def nginx_example(readme: str) -> str:
    blocks = re.findall(r"```nginx\n(.*?)```", readme, flags=re.S)
    assert len(blocks) == 1, "the README has one nginx example"
    return blocks[0]


def logged_secrets(config: str) -> list[str]:
    """What in ``config`` would put a password or a reset token in a log."""
    config = "\n".join(line.split("#", 1)[0] for line in config.splitlines())
    formats = dict(re.findall(r"log_format\s+(\w+)\s+'([^;]*)';", config))
    problems = []
    for name, fmt in formats.items():
        problems += [f"log_format {name}: {v}" for v in _SECRET_VARIABLES.findall(fmt)]
        if "$uri" in fmt:
            problems.append(f"log_format {name}: $uri (a reset link's token)")
        for mapped in re.findall(r"\$(\w+)", fmt):
            rule = re.search(rf"map\s+\$uri\s+\${mapped}\s*\{{([^}}]*)\}}", config)
            if rule is not None and "/mot-de-passe/" not in rule.group(1):
                problems.append(f"map ${mapped}: reset links kept whole")
    logs = re.findall(r"access_log\s+([^;]*);", config)
    if not logs:
        problems.append("no access_log: nginx's default combined format logs $request")
    for log in logs:
        words = log.split()
        if words[0] != "off" and (len(words) < 2 or words[1] not in formats):
            problems.append(f"access_log {log}: the combined format logs $request")
    return problems


def test_the_readme_proxy_example_logs_no_secret() -> None:
    assert logged_secrets(nginx_example((PROJECT_ROOT / "README.md").read_text())) == []


def test_the_check_finds_a_proxy_that_logs_secrets() -> None:
    # The example as it was before issue 17: no access_log line at all (the combined format).
    assert logged_secrets("server {\n    listen 443 ssl;\n    location / { proxy_pass http://x; }\n}\n")
    assert logged_secrets("log_format v '$remote_addr \"$request\"';\naccess_log /x.log v;\n")
    assert logged_secrets("log_format v '$remote_addr $uri';\naccess_log /x.log v;\n")
    assert logged_secrets("access_log /var/log/nginx/x.log;\n")
