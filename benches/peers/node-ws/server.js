'use strict';
// Peer broadcast server: every text/binary message received is sent, unchanged,
// to every open client of the sender's room (the sender included). The room is
// named in the upgrade URL (`/?room=NAME`); without one, every client is in the
// same unnamed room, so a server without rooms is the special case of one room.
// Usage: node server.js --port N [--host H] [--deflate]
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

// room name -> Set of its clients; a room is dropped with its last client.
const rooms = new Map();

// `room=` in the upgrade URL's query, as given ('' when there is none).
const roomOf = (url) => {
  const q = (url || '').indexOf('?');
  if (q < 0) return '';
  for (const pair of url.slice(q + 1).split('#')[0].split('&')) {
    if (pair.startsWith('room=')) return pair.slice(5);
  }
  return '';
};

wss.on('connection', (ws, req) => {
  const name = roomOf(req.url);
  let room = rooms.get(name);
  if (room === undefined) {
    room = new Set();
    rooms.set(name, room);
  }
  room.add(ws);
  ws.on('error', () => {}); // a bad client just goes away; keep serving the rest
  ws.on('close', () => {
    room.delete(ws);
    if (room.size === 0 && rooms.get(name) === room) rooms.delete(name);
  });
  ws.on('message', (data, isBinary) => {
    for (const client of room) {
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
