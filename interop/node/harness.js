#!/usr/bin/env node
// Runs one real atmosphere.js client (npm 2.3.6, 3.1.3, 4.0.1 or 5.0.45) under Node and
// reports everything it does as JSON lines, so that Python tests can drive it against our
// server.
//
//   node [--experimental-websocket] harness.js --version 2.3.6 --url http://127.0.0.1:PORT/v2/event/subscription \
//       [--track-message-length] [--heartbeat-server SECONDS] [--timeout-ms N]
//       [--max-reconnect N] [--reconnect-interval-ms N] [--no-protocol]
//       [--header NAME=VALUE]... [--max-seconds N] [--push-on-open DATA]... [--close-on TEXT]
//
// What an application does, for clients that run on their own (the conformance kit's subject):
//   --push-on-open DATA   push DATA after onOpen and again after every onReopen (an iTrack
//                         application subscribing, and subscribing again after a reconnect)
//   --close-on TEXT       close (as the "close" command does) when a message containing TEXT
//                         is delivered
//
// stdout: one JSON object per line, each with "t" (ms since start) and "event":
//   ready {version, framework}    the library loaded; the subscription starts right after
//   open {uuid, transport, status}            onOpen (fires on the handshake frame)
//   message {data}                            onMessage (trimmed body, as the library delivers)
//   reopen {uuid} / reconnect {uuid}          onReopen / onReconnect
//   close {status, state} / error {status, reason} / clientTimeout {uuid}
//   transportFailure {reason} / failureToReconnect {uuid}
//   ws-connect {url} / ws-open / frame {data} / ws-send {data} / ws-close {code, reason}
//                                             raw WebSocket activity, below the library
//   http {method, url} / http-done {status}   the library's XMLHttpRequests (the close request)
//   exception {message}                       an exception thrown inside a callback
//   stdin-error {line, message}               a command line that could not be read
//   app {cmd, data}                           a command --push-on-open or --close-on gave
//   exit {reason}                             the last line
// stdin: one JSON command per line: {"cmd":"push","data":"..."}, {"cmd":"close"},
//   {"cmd":"exit"}.  The harness exits (status 0) when stdin ends or on "exit", and with
//   status 4 after --max-seconds (default 60); bad arguments give 2, a missing package 3.
//   The client's own heartbeat cadence is not an option: the server's handshake sets it
//   (the library's `heartbeat.client` option is never read by 2.3.6 – 4.0.1).
//
// How each version loads under Node (read from the packages' index.js and lib/atmosphere.js):
// - All three have the same index.js: when no global `window` exists it builds a fake one
//   (navigator.userAgent "atmosphere.js", empty document and location) with
//   window.WebSocket = require("ws"), window.XMLHttpRequest = require("xmlhttprequest"),
//   copies WebSocket/navigator/document onto the global object, and exports the library.
//   One process can therefore hold one version only: the first require wins the globals.
// - 2.3.6 depends on ws ^1 (1.1.5) and announces itself as "2.3.3-javascript" (its version
//   string was never bumped).  Its close request is an XHR whose async flag is the option
//   `closeAsync` (default false): a synchronous request in the `xmlhttprequest` package spawns
//   a child Node process and blocks the event loop, so we set closeAsync: true.
// - 3.1.3 (ws 6) announces "3.1.3-javascript"; 4.0.1 (ws 6) announces "4.0.1".  Both send the
//   close request with navigator.sendBeacon when it exists (a POST) and else with an async
//   XHR GET; `unloadBackwardCompat` is computed from the fake navigator, which has no
//   sendBeacon, so under Node they always use the XHR.  closeAsync is ignored there.
// - 2.3.6 falls back to `fallbackTransport` when a socket closes before any frame arrived;
//   3.1.3+ also retry once on a socket error (maxWebsocketErrorRetries).  With
//   fallbackTransport "websocket" every version just retries the websocket.
// - On Node 21+ the global `navigator` is built in and index.js cannot replace it; the
//   library then sees Node's navigator, which has no sendBeacon either, so nothing changes.
// - 5.x is a TypeScript rewrite (dist/index.cjs): `atmosphere.subscribe(request, handlers)`
//   returns a promise of a subscription, and the transport uses the platform's WebSocket
//   global (Node 22+, or Node 20/21 started with --experimental-websocket; without it the
//   harness exits 3).  It announces "5.0.7" (the 5.0.45 package never bumped that string),
//   sends no HTTP close request (close() just closes the socket), keeps its tracking id
//   across reconnects and parses a handshake again on every new socket.
"use strict";

const path = require("path");

const started = process.hrtime.bigint();

function now() {
  return Number((process.hrtime.bigint() - started) / 1000n) / 1000;
}

function emit(event, fields) {
  // Pipes are synchronous on Linux, so every line is out before process.exit().
  process.stdout.write(JSON.stringify(Object.assign({ t: now(), event: event }, fields)) + "\n");
}

// The library logs through console.log/info/debug, which write to stdout: keep stdout for
// our JSON lines only.
for (const name of ["log", "info", "debug"]) {
  console[name] = (...args) => console.error(...args);
}

function usage(message) {
  process.stderr.write(
    "harness.js: " + message + "\n" +
      "usage: node harness.js --version 2.3.6|3.1.3|4.0.1|5.0.45 --url http://HOST:PORT/PATH " +
      "[--track-message-length] [--heartbeat-server S] [--timeout-ms N] [--max-reconnect N] " +
      "[--reconnect-interval-ms N] [--no-protocol] [--header NAME=VALUE]... [--max-seconds N] " +
      "[--push-on-open DATA]... [--close-on TEXT]\n"
  );
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    version: null,
    url: null,
    trackMessageLength: false,
    heartbeatServer: null,
    timeoutMs: null,
    maxReconnect: null,
    reconnectIntervalMs: null,
    enableProtocol: true,
    headers: {},
    maxSeconds: 60,
    pushOnOpen: [],
    closeOn: null,
  };
  const number = (name, value) => {
    const n = Number(value);
    if (value === undefined || !Number.isFinite(n) || n < 0) usage(name + " needs a number >= 0");
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case "--version": opts.version = argv[++i]; break;
      case "--url": opts.url = argv[++i]; break;
      case "--track-message-length": opts.trackMessageLength = true; break;
      case "--heartbeat-server": opts.heartbeatServer = number(arg, argv[++i]); break;
      case "--timeout-ms": opts.timeoutMs = number(arg, argv[++i]); break;
      case "--max-reconnect": opts.maxReconnect = number(arg, argv[++i]); break;
      case "--reconnect-interval-ms": opts.reconnectIntervalMs = number(arg, argv[++i]); break;
      case "--no-protocol": opts.enableProtocol = false; break;
      case "--max-seconds": opts.maxSeconds = number(arg, argv[++i]); break;
      case "--push-on-open": {
        const data = argv[++i];
        if (data === undefined) usage("--push-on-open needs DATA");
        opts.pushOnOpen.push(data);
        break;
      }
      case "--close-on":
        opts.closeOn = argv[++i];
        if (!opts.closeOn) usage("--close-on needs TEXT");
        break;
      case "--header": {
        const pair = argv[++i] || "";
        const eq = pair.indexOf("=");
        if (eq <= 0) usage("--header needs NAME=VALUE");
        opts.headers[pair.slice(0, eq)] = pair.slice(eq + 1);
        break;
      }
      default: usage("unknown argument " + JSON.stringify(arg));
    }
  }
  if (!opts.version) usage("--version is required");
  if (!opts.url) usage("--url is required");
  return opts;
}

function resolvePackage(version) {
  // package.json installs each version under an npm alias: atmosphere-<version>.
  const name = "atmosphere-" + version;
  try {
    return require.resolve(name, { paths: [__dirname] });
  } catch (e) {
    process.stderr.write(
      "harness.js: cannot find the npm package " + name + " (" + e.message + ").\n" +
        "Run `npm ci` in " + __dirname + " first.\n"
    );
    process.exit(3);
  }
}

function loadAtmosphere(version) {
  const resolved = resolvePackage(version);
  const atmosphere = require(resolved);
  // What index.js installed: wrap it to see the wire below the library.  The library calls
  // `new WebSocket(url)` (the global) and `new window.XMLHttpRequest()`, at call time.
  instrumentWebSocket(global.WebSocket);
  instrumentXhr(global.window);
  return { atmosphere: atmosphere, dir: path.dirname(resolved) };
}

// The tracking id 5.x parsed from the last handshake: the library keeps it inside its
// transport, so the harness reads it from the first frame of each socket the same way.
let modernUuid = null;

function loadModern(version, trackMessageLength) {
  // 5.x: one CommonJS bundle; the WebSocket it opens is the platform's global, read at call
  // time, so wrapping the global is enough to see the wire.
  const resolved = resolvePackage(version);
  if (typeof globalThis.WebSocket !== "function") {
    process.stderr.write(
      "harness.js: atmosphere.js " + version + " needs a WebSocket global: run Node 22+, or " +
        "Node 20/21 with --experimental-websocket.\n"
    );
    process.exit(3);
  }
  const Base = globalThis.WebSocket;
  class LoggedWebSocket extends Base {
    constructor(url, ...rest) {
      emit("ws-connect", { url: String(url) });
      super(url, ...rest);
      // Listeners added here run before the library's on* handlers (set after construction),
      // so a frame is logged before the callbacks it causes.
      this.addEventListener("open", () => emit("ws-open", {}));
      let first = true;
      this.addEventListener("message", (e) => {
        const data = typeof e.data === "string" ? e.data : String(e.data);
        emit("frame", { data: data });
        if (first && data.trim()) {
          first = false;
          const fields = data.split("|");
          const at = trackMessageLength ? 1 : 0;
          if (fields.length > at + 1) modernUuid = fields[at].trim();
        }
      });
      this.addEventListener("close", (e) => emit("ws-close", { code: e.code, reason: String(e.reason || "") }));
      this.addEventListener("error", (e) => {
        emit("ws-error", { message: String(e && e.message ? e.message : "error") });
      });
    }

    send(data) {
      emit("ws-send", { data: typeof data === "string" ? data : String(data) });
      return super.send(data);
    }
  }
  globalThis.WebSocket = LoggedWebSocket;
  return require(resolved);
}

function instrumentWebSocket(Base) {
  class LoggedWebSocket extends Base {
    constructor(url, ...rest) {
      emit("ws-connect", { url: String(url) });
      super(url, ...rest);
    }

    // ws 1.x's onmessage/onopen/... setters remove every listener of that event, so we
    // listen by wrapping emit() instead: it runs before the library's handlers, so a frame
    // is logged before the callbacks it causes.  ws 1.x emits ("message", data, flags),
    // ws 6 ("message", data); both emit ("close", code, reason).
    emit(name, ...args) {
      if (name === "message") {
        emit("frame", { data: typeof args[0] === "string" ? args[0] : String(args[0]) });
      } else if (name === "open") {
        emit("ws-open", {});
      } else if (name === "close") {
        emit("ws-close", { code: args[0], reason: args[1] === undefined ? "" : String(args[1]) });
      } else if (name === "error") {
        emit("ws-error", { message: String(args[0] && args[0].message ? args[0].message : args[0]) });
      }
      return super.emit(name, ...args);
    }

    send(data, ...rest) {
      emit("ws-send", { data: typeof data === "string" ? data : String(data) });
      return super.send(data, ...rest);
    }
  }
  global.WebSocket = LoggedWebSocket;
  if (global.window) global.window.WebSocket = LoggedWebSocket;
}

function instrumentXhr(win) {
  const Base = win.XMLHttpRequest;
  win.XMLHttpRequest = function LoggedXMLHttpRequest() {
    const xhr = new Base();
    const open = xhr.open;
    xhr.open = function (method, url, ...rest) {
      emit("http", { method: String(method), url: String(url), async: rest[0] !== false });
      return open.call(this, method, url, ...rest);
    };
    xhr.addEventListener("readystatechange", () => {
      if (xhr.readyState === 4) emit("http-done", { status: xhr.status });
    });
    return xhr;
  };
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  let exiting = false;
  function exit(reason, code) {
    if (exiting) return;
    exiting = true;
    emit("exit", { reason: reason });
    process.exit(code || 0);
  }

  // A browser reports an exception thrown in an event handler and keeps the page running
  // (atmosphere.js throws on a non-numeric TrackMessageSize length, for one); do the same.
  process.on("uncaughtException", (err) => {
    emit("exception", { message: String(err && err.message ? err.message : err) });
  });

  const hardLimit = setTimeout(() => exit("max-seconds", 4), opts.maxSeconds * 1000);

  if (Number(opts.version.split(".")[0]) >= 5) {
    runModern(opts, exit, hardLimit);
    return;
  }
  const loaded = loadAtmosphere(opts.version);
  const atmosphere = loaded.atmosphere;
  emit("ready", { version: opts.version, framework: atmosphere.version });

  const request = {
    url: opts.url,
    contentType: "application/json",
    transport: "websocket",
    fallbackTransport: "websocket",
    enableProtocol: opts.enableProtocol,
    trackMessageLength: opts.trackMessageLength,
    closeAsync: true, // 2.3.x only; see the top of this file
    logLevel: "info",
    headers: opts.headers,
  };
  if (opts.heartbeatServer !== null) request.heartbeat = { client: null, server: opts.heartbeatServer };
  if (opts.timeoutMs !== null) request.timeout = opts.timeoutMs;
  if (opts.maxReconnect !== null) request.maxReconnectOnClose = opts.maxReconnect;
  if (opts.reconnectIntervalMs !== null) request.reconnectInterval = opts.reconnectIntervalMs;

  let subscription = null;
  const uuidOf = (rq) => {
    if (rq && rq.uuid !== undefined) return String(rq.uuid);
    return subscription ? String(subscription.getUUID()) : null;
  };
  const app = application(opts, command);
  request.onOpen = (response) => {
    emit("open", {
      uuid: uuidOf(response && response.request),
      transport: response && response.transport,
      status: response && response.status,
    });
    app.opened();
  };
  request.onMessage = (response) => {
    emit("message", { data: response.responseBody });
    app.delivered(response.responseBody);
  };
  request.onReopen = (rq) => {
    emit("reopen", { uuid: uuidOf(rq) });
    app.opened();
  };
  request.onReconnect = (rq) => emit("reconnect", { uuid: uuidOf(rq) });
  request.onClose = (response) => emit("close", { status: response.status, state: response.state });
  request.onError = (response) => emit("error", {
    status: response.status,
    reason: response.reasonPhrase === undefined ? null : String(response.reasonPhrase),
  });
  request.onClientTimeout = (rq) => emit("clientTimeout", { uuid: uuidOf(rq) });
  request.onTransportFailure = (reason) => emit("transportFailure", { reason: String(reason) });
  request.onFailureToReconnect = (rq) => emit("failureToReconnect", { uuid: uuidOf(rq) });

  subscription = atmosphere.subscribe(request);

  function command(cmd, line) {
    switch (cmd && cmd.cmd) {
      case "push":
        subscription.push(String(cmd.data));
        break;
      case "close":
        // What applications call: close every subscription (close request, then socket).
        atmosphere.unsubscribe();
        break;
      case "exit":
        clearTimeout(hardLimit);
        exit("exit-command", 0);
        break;
      default:
        emit("stdin-error", { line: line, message: "unknown command" });
    }
  }

  readCommands(command, exit);
}

function application(opts, command) {
  // What --push-on-open and --close-on make the harness do by itself: the same commands as
  // stdin's, given to the same handler, and logged as "app {cmd}" first.
  const run = (cmd) => {
    emit("app", cmd);
    command(cmd, JSON.stringify(cmd));
  };
  return {
    opened() {
      for (const data of opts.pushOnOpen) run({ cmd: "push", data: data });
    },
    delivered(data) {
      if (opts.closeOn !== null && String(data).includes(opts.closeOn)) run({ cmd: "close" });
    },
  };
}

function readCommands(handle, exit) {
  // One JSON command per line; a line that is not JSON is reported, the others handled.
  function command(line) {
    if (!line.trim()) return;
    let cmd;
    try {
      cmd = JSON.parse(line);
    } catch (e) {
      emit("stdin-error", { line: line, message: e.message });
      return;
    }
    handle(cmd, line);
  }
  let pending = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf("\n")) !== -1) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      command(line);
    }
  });
  process.stdin.on("end", () => {
    if (pending) command(pending);
    exit("stdin-closed", 0);
  });
}

function runModern(opts, exit, hardLimit) {
  const lib = loadModern(opts.version, opts.trackMessageLength);
  const atmosphere = lib.atmosphere;
  emit("ready", { version: opts.version, framework: atmosphere.version });
  const request = {
    url: opts.url,
    contentType: "application/json",
    transport: "websocket",
    fallbackTransport: "websocket",
    enableProtocol: opts.enableProtocol,
    trackMessageLength: opts.trackMessageLength,
    reconnect: true,
    headers: opts.headers,
  };
  if (opts.heartbeatServer !== null) request.heartbeat = { server: opts.heartbeatServer };
  if (opts.timeoutMs !== null) request.timeout = opts.timeoutMs;
  if (opts.maxReconnect !== null) request.maxReconnectOnClose = opts.maxReconnect;
  if (opts.reconnectIntervalMs !== null) request.reconnectInterval = opts.reconnectIntervalMs;

  let subscription = null;
  const uuidOf = () => modernUuid;
  const app = application(opts, command);
  const handlers = {
    open: (response) => {
      emit("open", {
        uuid: uuidOf(),
        transport: response && response.transport,
        status: response && response.status,
      });
      app.opened();
    },
    message: (response) => {
      emit("message", { data: response.responseBody });
      app.delivered(response.responseBody);
    },
    reopen: () => {
      emit("reopen", { uuid: uuidOf() });
      app.opened();
    },
    reconnect: () => emit("reconnect", { uuid: uuidOf() }),
    close: (response) => emit("close", { status: response.status, state: response.state }),
    error: (err) => emit("error", { status: null, reason: String(err && err.message ? err.message : err) }),
    clientTimeout: () => emit("clientTimeout", { uuid: uuidOf() }),
    transportFailure: (reason) => emit("transportFailure", { reason: String(reason) }),
    failureToReconnect: () => emit("failureToReconnect", { uuid: uuidOf() }),
  };
  const queued = [];
  atmosphere.subscribe(request, handlers).then(
    (sub) => {
      subscription = sub;
      emit("subscribed", { id: String(sub.id) });
      for (const [cmd, line] of queued.splice(0)) command(cmd, line);
    },
    (err) => emit("subscribe-error", { message: String(err && err.message ? err.message : err) }),
  );

  function command(cmd, line) {
    if (cmd && cmd.cmd === "exit") {
      clearTimeout(hardLimit);
      exit("exit-command", 0);
      return;
    }
    if (subscription === null) {
      queued.push([cmd, line]);  // subscribe() has not resolved yet
      return;
    }
    switch (cmd && cmd.cmd) {
      case "push":
        subscription.push(String(cmd.data));
        break;
      case "close":
        subscription.close();
        break;
      default:
        emit("stdin-error", { line: line, message: "unknown command" });
    }
  }
  readCommands(command, exit);
}

main();
