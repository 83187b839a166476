// PouchDB 9 replicating a set of records over one HTTP link, for sync_bench
// (tests/src/bin/sync_bench) to put beside Tideline's first sync.
//
//   node tests/pouchdb/replicate.js RECORDS.jsonl
//
// RECORDS.jsonl holds one record a line, `{"id", "form", "fields"}` as
// sync_bench writes them (or `{"meta": {"id"}, "form", "fields"}` as in the
// reference workload). Each becomes one document: `_id` the record's id, its
// body the fields plus `form`.
//
// An express-pouchdb server listens on 127.0.0.1, port 0, its databases in a
// temporary directory (leveldb through pouchdb-node). A local pouchdb-node
// database in another temporary directory is loaded with the records before
// timing starts; then one `local.replicate.to(remote)` (one-shot, default
// options) is timed until it completes, and the remote's document count is
// checked against the input.
//
// Bytes are counted on the server's side of its TCP connections
// (`socket.bytesRead` / `socket.bytesWritten`), so they include HTTP headers;
// requests are the server's `request` events. Both are the difference between
// a snapshot just before and just after the replication, so creating the
// remote database and the final check do not count.
//
// Prints one JSON object on stdout:
//   {"records", "seconds", "requests", "bytes_up", "bytes_down",
//    "cpu_s", "peak_rss_mb"}
// bytes_up is what the server read (client to server), bytes_down what it
// wrote. cpu_s is this process's CPU time during the replication, both ends
// included since they share the process; peak_rss_mb is its peak over the
// whole run, loading included. Progress goes to stderr.

'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');

const PouchDB = require('pouchdb-node');
const express = require('express');
const expressPouchDB = require('express-pouchdb');

/** Documents written to the local database per bulkDocs call while loading. */
const LOAD_BATCH = 500;

function progress(message) {
  process.stderr.write(`pouchdb: ${message}\n`);
}

/** One document per line of `file`, in file order. */
async function readDocs(file) {
  const docs = [];
  const lines = readline.createInterface({
    input: fs.createReadStream(file, { encoding: 'utf8' }),
    crlfDelay: Infinity,
  });
  let lineNo = 0;
  for await (const line of lines) {
    lineNo += 1;
    if (line.trim() === '') continue;
    let rec;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${lineNo}: not JSON: ${e.message}`);
    }
    const id = rec.id ?? rec.meta?.id;
    if (typeof id !== 'string' || typeof rec.fields !== 'object' || rec.fields === null) {
      throw new Error(`${file}:${lineNo}: expected {"id", "form", "fields"}`);
    }
    docs.push({ ...rec.fields, form: rec.form, _id: id });
  }
  return docs;
}

/** The server's connections and requests, counted from its side. */
function countTraffic(server) {
  const open = new Set();
  const closed = { read: 0, written: 0 };
  let requests = 0;
  server.on('connection', (socket) => {
    open.add(socket);
    socket.on('close', () => {
      closed.read += socket.bytesRead;
      closed.written += socket.bytesWritten;
      open.delete(socket);
    });
  });
  server.on('request', () => {
    requests += 1;
  });
  return () => {
    let read = closed.read;
    let written = closed.written;
    for (const socket of open) {
      read += socket.bytesRead;
      written += socket.bytesWritten;
    }
    return { read, written, requests };
  };
}

function listen(app) {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, '127.0.0.1', () => resolve(server));
    server.on('error', reject);
  });
}

async function main() {
  const file = process.argv[2];
  if (!file || process.argv.length > 3) {
    throw new Error('usage: node replicate.js RECORDS.jsonl');
  }
  const docs = await readDocs(file);
  if (docs.length === 0) throw new Error(`${file} holds no records`);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pouchdb-bench-'));
  let server;
  try {
    const serverDir = path.join(tmp, 'server');
    fs.mkdirSync(serverDir);
    const ServerPouch = PouchDB.defaults({ prefix: `${serverDir}${path.sep}` });
    const app = express();
    app.use('/', expressPouchDB(ServerPouch, { mode: 'minimumForPouchDB' }));
    server = await listen(app);
    const traffic = countTraffic(server);
    const { port } = server.address();

    const local = new PouchDB(path.join(tmp, 'local'));
    const loadStart = process.hrtime.bigint();
    for (let i = 0; i < docs.length; i += LOAD_BATCH) {
      const results = await local.bulkDocs(docs.slice(i, i + LOAD_BATCH));
      const failed = results.find((r) => r.error);
      if (failed) throw new Error(`loading ${failed.id}: ${failed.message || failed.error}`);
    }
    const loadSecs = Number(process.hrtime.bigint() - loadStart) / 1e9;
    progress(`loaded ${docs.length} documents locally in ${loadSecs.toFixed(1)} s`);

    // Creating the remote database is set-up, not replication.
    const remote = new PouchDB(`http://127.0.0.1:${port}/bench`);
    await remote.info();

    const before = traffic();
    const cpuBefore = process.cpuUsage();
    const start = process.hrtime.bigint();
    const result = await local.replicate.to(remote);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const cpu = process.cpuUsage(cpuBefore);
    const after = traffic();

    if (!result.ok) throw new Error(`replication failed: ${JSON.stringify(result.errors)}`);
    const info = await remote.info();
    if (info.doc_count !== docs.length) {
      throw new Error(`the remote holds ${info.doc_count} documents, expected ${docs.length}`);
    }
    progress(`replicated ${docs.length} documents in ${seconds.toFixed(2)} s`);
    await local.close();
    await remote.close();

    const out = {
      records: docs.length,
      seconds: Math.round(seconds * 1000) / 1000,
      requests: after.requests - before.requests,
      bytes_up: after.read - before.read,
      bytes_down: after.written - before.written,
      cpu_s: Math.round((cpu.user + cpu.system) / 1000) / 1000,
      peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 102.4) / 10,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    if (server) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`pouchdb: ${e.stack || e}\n`);
  process.exit(1);
});
