"""How live the language server feels, as ratios measured in one run:
`python benchmarks/lsp.py [--rounds N] [spec ...]`.

For each spec (default: specs/googlenet.arch, the largest spec by size, and the slowest to check), against a
cold `archc check` of the same file (a new process, as a terminal user runs it):
- diagnostics: from a `didChange` (an edit to a statement's argument, and back) to the server's
  `publishDiagnostics` for it, over the real protocol on stdio;
- hover: from a hover request on a layer to its answer.
The goals (issue: the editor) are 50 ms of diagnostics for googlenet, 200 ms for the largest spec and 20 ms
for hover; what this machine gives is printed, never asserted.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYER = re.compile(r"\s+([a-z_][a-z0-9_]*) = [A-Za-z_][A-Za-z0-9_]*\((?=[a-z0-9_])")


class Client:
    """The least of an LSP client: JSON-RPC with Content-Length framing over the server's stdio."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "archc", "lsp"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
        self.next_id = 0

    def send(self, method: str, params: dict, request: bool = False) -> int | None:
        message: dict = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return message.get("id")

    def receive(self) -> dict:
        length = 0
        while (line := self.proc.stdout.readline().strip()):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        return json.loads(self.proc.stdout.read(length))

    def wait(self, match) -> dict:
        while True:
            message = self.receive()
            if "id" in message and "method" in message:  # a request from the server: answer it
                self.proc.stdin.write(self._reply(message["id"]))
                self.proc.stdin.flush()
            elif match(message):
                return message

    @staticmethod
    def _reply(ident) -> bytes:
        body = json.dumps({"jsonrpc": "2.0", "id": ident, "result": None}).encode()
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    def request(self, method: str, params: dict) -> dict:
        ident = self.send(method, params, request=True)
        return self.wait(lambda m: m.get("id") == ident and "method" not in m)

    def close(self) -> None:
        self.request("shutdown", {})
        self.send("exit", {})
        self.proc.wait(timeout=10)


def cold_check(path: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "archc", "check", str(path)], check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def live(path: Path, rounds: int) -> tuple[list[float], list[float]]:
    """(seconds from didChange to its diagnostics, seconds of hover) over ``rounds`` edits."""
    text = path.read_text()
    uri = path.resolve().as_uri()
    client = Client()
    client.request("initialize", {"processId": None, "rootUri": ROOT.as_uri(), "capabilities": {}})
    client.send("initialized", {})
    client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "arch", "version": 1,
                                                          "text": text}})
    def is_diagnostics(m: dict) -> bool:
        return m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri

    client.wait(is_diagnostics)
    line, column = _a_layer(text)
    edited = _edit(text, line)
    changes, hovers = [], []
    for i in range(rounds):
        version = i + 2
        start = time.perf_counter()
        client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                               "contentChanges": [{"text": edited if i % 2 == 0 else text}]})
        client.wait(is_diagnostics)
        changes.append(time.perf_counter() - start)
        start = time.perf_counter()
        answer = client.request("textDocument/hover", {"textDocument": {"uri": uri},
                                                       "position": {"line": line, "character": column}})
        hovers.append(time.perf_counter() - start)
        assert answer.get("result"), f"no hover at {path.name}:{line + 1}:{column + 1}"
    client.close()
    return changes, hovers


def _a_layer(text: str) -> tuple[int, int]:
    """The position of the first named layer with a first argument, ``name = op(arg`` (0-based line and column)."""
    for i, line in enumerate(text.splitlines()):
        m = LAYER.match(line)
        if m:
            return i, m.start(1)
    raise SystemExit("no layer to hover on")


def _edit(text: str, line: int) -> str:
    """The text with the hovered layer's first argument changed: a real edit that re-checks the file."""
    lines = text.splitlines(keepends=True)
    m = LAYER.match(lines[line])
    lines[line] = lines[line][:m.end()] + "2 * " + lines[line][m.end():]
    return "".join(lines)


def slowest_to_check(paths: list[Path]) -> Path:
    import archc

    def seconds(p: Path) -> float:
        start = time.perf_counter()
        archc.load(p).source()
        return time.perf_counter() - start

    # the better of two checks: the first of all pays for importing the compiler, each spec's first for the
    # kinds of layer it is the first to use
    times = {p: min(seconds(p), seconds(p)) for p in paths}
    return max(paths, key=times.__getitem__)


def main(argv: list[str]) -> None:
    rounds = 10
    if "--rounds" in argv:
        at = argv.index("--rounds")
        rounds, argv = int(argv[at + 1]), argv[:at] + argv[at + 2:]
    if argv:
        paths = [Path(a).resolve() for a in argv]
    else:
        specs = [p for p in sorted((ROOT / "specs").glob("*.arch")) if "variant " in p.read_text()]
        largest = max(specs, key=lambda p: p.stat().st_size)
        paths = list(dict.fromkeys([ROOT / "specs" / "googlenet.arch", largest, slowest_to_check(specs)]))
    print(f"{'spec':24} {'cold check':>11} {'diagnostics':>12} {'ratio':>7} {'hover':>9} {'ratio':>7}")
    for path in paths:
        cold = statistics.median(cold_check(path) for _ in range(5))
        changes, hovers = live(path, rounds)
        change, hover = statistics.median(changes), statistics.median(hovers)
        print(f"{path.name:24} {cold * 1000:9.0f} ms {change * 1000:9.1f} ms {change / cold:7.3f} "
              f"{hover * 1000:6.1f} ms {hover / cold:7.4f}")


if __name__ == "__main__":
    main(sys.argv[1:])
