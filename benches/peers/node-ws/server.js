'use strict';
// Peer broadcast server: every text/binary message received is sent, unchanged,
// to every open client (the sender included). Usage: node server.js --port N [--host H] [--deflate]
// --deflate turns on permessage-deflate the way ws users do (perMessageDeflate: true).
const { WebSocketServer, WebSocket } = require('ws');

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const host = opt('--host', '127.0.0.1');
const port = Number.parseInt(opt('--port', '0'), 10);

const perMessageDeflate = args.includes('--deflate');
const wss = new WebSocketServer({ host, port, perMessageDeflate, maxPayload: 16 * 1024 * 1024 });

wss.on('connection', (ws) => {
  ws.on('error', () => {}); // a bad client just goes away; keep serving the rest
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
});

wss.on('listening', () => {
  const { address, port: actual } = wss.address();
  process.stdout.write(`listening on ${address}:${actual}\n`); // sync write on pipes/files: no flush needed
});

const stop = () => {
  for (const client of wss.clients) client.terminate();
  wss.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
