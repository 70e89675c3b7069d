"""The layers of the README's architecture section, checked on the source: no import circle anywhere,
the development stack never reached from the runtime, and the entry points (pages, API, http.php,
e-mail, the IVR, the customer commands) reaching the system only through the services room."""

from __future__ import annotations

from engine.settings import PROJECT_ROOT
from tests.support.imports import Import, cycles, imports, our_modules

# Operator commands may use what they need (the stack, the store, the engine, ARI); every other command
# is a customer's and goes through the services like the pages do.
OPERATOR_COMMANDS = {"stack", "serve", "migrate", "call", "trunk"}
# What an entry point may not reach: the adapters and the process behind the services.
BEHIND_THE_SERVICES = ("engine.store", "engine.app", "engine.stack", "engine.telephony")


# Each layer and what it may import besides itself (README, "Architecture"): dependencies point one way,
# from the entry points through the services to the adapters and the pure domain core.
LAYERS = (
    "engine.domain",
    "engine.store",
    "engine.telephony",
    "engine.media",
    "engine.mailer",
    "engine.services",
    "engine.web",
    "engine.mail",
    "engine.commands",
    "engine.stack",
    "ivr",
)
BASE = {"engine", "engine.errors", "engine.settings", "engine.logs"}
ALLOWED = {
    "engine.domain": {"engine.errors"},
    "engine.store": BASE | {"engine.domain"},
    "engine.telephony": BASE | {"engine.domain", "engine.media"},  # where Asterisk reads its files
    "engine.media": BASE | {"engine.domain"},
    "engine.mailer": BASE,
    "engine.services": BASE
    | {
        "engine.domain",
        "engine.store",
        "engine.telephony",
        "engine.media",
        "engine.mailer",
        "engine.metrics",
    },
    "engine.web": BASE | {"engine.domain", "engine.services"},
    "engine.mail": BASE | {"engine.services"},
    "ivr": BASE | {"engine.domain", "engine.services", "engine.media"},
}


def _layer(module: str) -> str:
    return next((layer for layer in LAYERS if _under(module, (layer,))), module)


def _is_entry_point(module: str) -> bool:
    if module.startswith(("engine.web.", "ivr.")) or module in {"engine.web", "ivr", "engine.mail"}:
        return True
    if module.startswith("engine.commands."):
        return module.rsplit(".", 1)[1] not in OPERATOR_COMMANDS | {"runner"}
    return False


def _under(target: str, prefixes: tuple[str, ...]) -> bool:
    return any(target == p or target.startswith(p + ".") for p in prefixes)


def _describe(found: list[Import]) -> list[str]:
    return sorted(f"{i.module} (line {i.line}) imports {i.target}" for i in found)


def test_the_import_graph_sees_every_kind_of_import() -> None:
    # The checks below mean something only if the graph holds imports inside functions and under
    # TYPE_CHECKING, and resolves `from package import module`.
    edges = {(i.module, i.target) for i in imports()}
    assert ("engine.cli", "engine.commands.runner") not in edges  # cli imports commands by name only
    assert ("engine.app", "engine.services") in edges  # from engine.services import build
    assert ("engine.app", "engine.mail") in edges  # from engine import mail
    assert ("engine.stack", "engine.store.accounts") in edges  # an import inside a function
    assert len(our_modules()) > 100


def test_no_import_circle() -> None:
    assert cycles(list(imports())) == []


def test_a_circle_is_found_when_there_is_one() -> None:
    edges = [Import("a", "b", 1), Import("b", "c", 1), Import("c", "a", 1), Import("c", "d", 1)]
    assert cycles(edges) == [["a", "b", "c"]]


def test_the_runtime_never_imports_the_development_stack() -> None:
    allowed = {"engine.commands.stack", "engine.commands.trunk"}
    found = [
        i
        for i in imports()
        if _under(i.target, ("engine.stack",)) and not _under(i.module, ("engine.stack",))
        if i.module not in allowed
    ]
    assert _describe(found) == []


def test_entry_points_reach_the_system_only_through_the_services() -> None:
    found = [i for i in imports() if _is_entry_point(i.module) and _under(i.target, BEHIND_THE_SERVICES)]
    assert _describe(found) == []


def test_each_layer_imports_only_what_it_may() -> None:
    found = []
    for i in imports():
        layer, target = _layer(i.module), _layer(i.target)
        if layer in ALLOWED and target != layer and target not in ALLOWED[layer]:
            found.append(i)
    assert _describe(found) == []


def test_sql_lives_in_the_store_and_the_migrations() -> None:
    offenders = []
    for name, path in our_modules().items():
        if name.startswith(("engine.store", "engine.stack")):
            continue
        text = path.read_text(encoding="utf-8")
        if any(word in text for word in ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM")):
            offenders.append(str(path.relative_to(PROJECT_ROOT)))
    assert offenders == []
