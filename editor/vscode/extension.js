// Starts `archc lsp` (diagnostics, hover with shapes, inlay hints, definitions, completion, rename and
// formatting all come from the server) for every .arch file.
const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("archc").get("command", ["archc", "lsp"]);
  client = new LanguageClient(
    "archc",
    "archc",
    { command, args },
    { documentSelector: [{ scheme: "file", language: "arch" }, { scheme: "untitled", language: "arch" }] },
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
