#!/usr/bin/env node
// collect.mjs: plays the part of an ODK Collect phone against an OpenRosa
// server (Tideline), using the real ODK Web Forms engine
// (@getodk/xforms-engine) under jsdom to load and fill the forms.
//
//   node collect.mjs load --server URL
//       GET URL/formList, download every form, check its md5 against the
//       list's hash, load it with the engine.
//   node collect.mjs fill --server URL --form FORMID --answers answers.json
//                         [--image REF=PATH ...] [--violate REF=VALUE] [--post]
//       Download and load FORMID, fill it from answers.json (instance
//       reference -> value in XForm text form), optionally check that a bad
//       value is reported as a constraint violation, build the submission
//       with the engine and, with --post, send it as Collect does
//       (HEAD URL/submission, then a multipart POST).
//
// Prints one JSON object on stdout at the end; diagnostics go to stderr.
// Exit status: 0 success, 1 a check failed, 2 usage error.

import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { JSDOM } from 'jsdom';

const USAGE = `usage:
  node collect.mjs load --server URL
  node collect.mjs fill --server URL --form FORMID --answers answers.json
                        [--image REF=PATH ...] [--violate REF=VALUE] [--post]`;

const OPENROSA = { 'X-OpenRosa-Version': '1.0' };

// Thrown for a failed check: reported in the JSON, exit status 1.
class CheckFailed extends Error {}

const log = (...args) => console.error('[collect]', ...args);

// ---------------------------------------------------------------------------
// Command line

function parseArgs(argv) {
  const [mode, ...rest] = argv;
  if (mode !== 'load' && mode !== 'fill') throw new UsageError('first argument must be load or fill');
  const opts = { mode, images: [], post: false };
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i];
    const value = () => {
      if (i + 1 >= rest.length) throw new UsageError(`${arg} needs a value`);
      return rest[++i];
    };
    switch (arg) {
      case '--server': opts.server = value().replace(/\/+$/, ''); break;
      case '--form': opts.form = value(); break;
      case '--answers': opts.answers = value(); break;
      case '--image': opts.images.push(splitPair(arg, value())); break;
      case '--violate': opts.violate = splitPair(arg, value()); break;
      case '--post': opts.post = true; break;
      default: throw new UsageError(`unknown argument ${arg}`);
    }
  }
  if (!opts.server) throw new UsageError('--server is required');
  if (mode === 'fill' && (!opts.form || !opts.answers)) {
    throw new UsageError('fill needs --form and --answers');
  }
  if (mode === 'load' && (opts.form || opts.answers || opts.images.length || opts.violate || opts.post)) {
    throw new UsageError('load takes only --server');
  }
  return opts;
}

class UsageError extends Error {}

function splitPair(flag, text) {
  const at = text.indexOf('=');
  if (at <= 0) throw new UsageError(`${flag} wants REF=VALUE, got ${text}`);
  return [text.slice(0, at), text.slice(at + 1)];
}

// ---------------------------------------------------------------------------
// Engine set-up

// The engine expects a browser-like global scope (DOMParser, XML DOM types);
// jsdom supplies it, as in the engine's own Node test runs.
async function loadEngine() {
  const { window } = new JSDOM('');
  for (const name of ['DOMParser', 'XMLSerializer', 'Node', 'Document', 'XMLDocument',
    'Element', 'Attr', 'Text', 'NodeFilter', 'document']) {
    if (!(name in globalThis)) globalThis[name] = window[name];
  }
  // The bundled web-tree-sitter (the XPath parser) reads __dirname when it sees
  // Node, which ES modules lack; its WASM comes from inlined data URLs, so any
  // directory will do.
  globalThis.__dirname ??= process.cwd();
  return import('@getodk/xforms-engine');
}

// ---------------------------------------------------------------------------
// OpenRosa form list and download

async function getFormList(server, parseXml) {
  const url = `${server}/formList`;
  const res = await fetch(url, { headers: OPENROSA });
  const body = await res.text();
  if (res.status !== 200) throw new CheckFailed(`GET ${url}: status ${res.status}: ${body.slice(0, 500)}`);
  // Collect refuses a form list without this header ("not an OpenRosa server").
  const orVersion = res.headers.get('x-openrosa-version');
  if (!orVersion) throw new CheckFailed(`GET ${url}: no X-OpenRosa-Version header in the reply`);
  const doc = parseXml(body, url);
  const text = (el, name) => el.getElementsByTagNameNS('*', name)[0]?.textContent.trim() ?? null;
  const forms = [...doc.getElementsByTagNameNS('*', 'xform')].map((el) => ({
    formID: text(el, 'formID'),
    name: text(el, 'name'),
    version: text(el, 'version'),
    hash: text(el, 'hash'),
    downloadUrl: text(el, 'downloadUrl'),
  }));
  log(`formList: ${forms.length} form(s), X-OpenRosa-Version ${orVersion}`);
  return forms;
}

// Downloads a listed form and checks its bytes against the list's md5 hash.
async function downloadForm(entry) {
  if (!entry.downloadUrl) throw new CheckFailed(`${entry.formID}: no downloadUrl in the form list`);
  const res = await fetch(entry.downloadUrl, { headers: OPENROSA });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) throw new CheckFailed(`GET ${entry.downloadUrl}: status ${res.status}`);
  const md5 = createHash('md5').update(bytes).digest('hex');
  const hashOk = (entry.hash ?? '').toLowerCase() === `md5:${md5}`;
  if (!hashOk) log(`${entry.formID}: list says ${entry.hash}, downloaded bytes have md5:${md5}`);
  return { xml: bytes.toString('utf8'), hashOk };
}

// The primary instance root's id and version, which Collect matches with the
// form list's formID and version.
function instanceIdentity(xml, parseXml) {
  const doc = parseXml(xml, 'form');
  const instance = doc.getElementsByTagNameNS('http://www.w3.org/2002/xforms', 'instance')[0];
  const root = instance?.firstElementChild;
  return { id: root?.getAttribute('id') ?? null, version: root?.getAttribute('version') ?? null };
}

// Loads a form with the engine and makes one instance of it, so that "loaded"
// means a phone could start filling it.
async function loadWithEngine(engine, entry, xml, parseXml) {
  const result = await engine.loadForm(xml);
  if (result.status === 'failure') {
    throw new CheckFailed(`${entry.formID}: engine refused the form: ${describeError(result.error)}`);
  }
  if (result.warnings) log(`${entry.formID}: engine warnings:`, JSON.stringify(result.warnings));
  const own = instanceIdentity(xml, parseXml);
  // A missing version attribute and an empty <version/> both mean "none".
  if (own.id !== entry.formID || (own.version ?? '') !== (entry.version ?? '')) {
    throw new CheckFailed(`${entry.formID}: form list says formID ${entry.formID} version ${entry.version}, `
      + `the form itself says id ${own.id} version ${own.version}`);
  }
  // A deviceID like Collect's keeps preloads from reaching for localStorage.
  const instance = result.createInstance({ preloadProperties: { deviceID: 'collect:tideline-harness' } });
  return { result, instance };
}

function describeError(error) {
  if (!error) return 'unknown error';
  const cause = error.cause ? ` (cause: ${error.cause.message ?? error.cause})` : '';
  return `${error.message}${cause}`;
}

// ---------------------------------------------------------------------------
// load mode

async function runLoad(opts, engine, parseXml, out) {
  for (const entry of await getFormList(opts.server, parseXml)) {
    const row = { formID: entry.formID, version: entry.version, hashOk: false, loaded: false, error: null };
    out.forms.push(row);
    try {
      const { xml, hashOk } = await downloadForm(entry);
      row.hashOk = hashOk;
      const { result } = await loadWithEngine(engine, entry, xml, parseXml);
      row.loaded = true;
      if (result.warnings) row.warnings = result.warnings;
      if (!hashOk) row.error = `hash mismatch: list says ${entry.hash}`;
    } catch (err) {
      row.error = err.message;
      log(`${entry.formID}: ${err.stack ?? err.message}`);
    }
  }
  if (out.forms.length === 0) throw new CheckFailed('the form list is empty');
  return out.forms.every((f) => f.hashOk && f.loaded);
}

// ---------------------------------------------------------------------------
// Finding and setting questions by instance reference

// "/data/crew[2]/name" -> [{name:"data"}, {name:"crew", index:2}, {name:"name"}]
function parseRef(ref) {
  if (!ref.startsWith('/')) throw new CheckFailed(`${ref}: references must be absolute (start with /)`);
  return ref.slice(1).split('/').map((step) => {
    const m = /^([^[\]]+)(?:\[(\d+)\])?$/.exec(step);
    if (!m) throw new CheckFailed(`${ref}: cannot read step "${step}"`);
    // Prefixes (orx:instanceID) are dropped: the engine matches local names.
    return { name: m[1].replace(/^.*:/, ''), index: m[2] ? Number(m[2]) : null };
  });
}

// Walks the engine's node tree to the node at ref, adding repeat instances
// through the engine (addInstances) where the reference asks for more.
function resolveNode(root, ref) {
  const [first, ...steps] = parseRef(ref);
  if (root.definition.qualifiedName.localName !== first.name) {
    throw new CheckFailed(`${ref}: the form's root is /${root.definition.qualifiedName.localName}`);
  }
  let node = root;
  for (const step of steps) {
    const child = (node.currentState.children ?? [])
      .find((c) => c.definition.qualifiedName.localName === step.name);
    if (!child) throw new CheckFailed(`${ref}: no "${step.name}" under ${node.currentState.reference}`);
    if (child.nodeType.startsWith('repeat-range')) {
      const index = step.index ?? 1;
      while (child.currentState.children.length < index) {
        if (child.nodeType !== 'repeat-range:uncontrolled') {
          throw new CheckFailed(`${ref}: ${child.currentState.reference} is counted by the form; cannot add instances`);
        }
        child.addInstances();
        log(`added ${child.currentState.reference}[${child.currentState.children.length}]`);
      }
      node = child.currentState.children[index - 1];
    } else {
      if (step.index != null && step.index !== 1) {
        throw new CheckFailed(`${ref}: ${child.currentState.reference} is not a repeat`);
      }
      node = child;
    }
  }
  return node;
}

// Sets a question from its value in XForm text form, the way the engine's
// own controls would.
function setAnswer(node, ref, value) {
  if (typeof value !== 'string') throw new CheckFailed(`${ref}: answers must be strings`);
  switch (node.nodeType) {
    case 'input':
    case 'range':
      // The engine's codecs read the XForm text form (dates, "lat lon alt acc").
      node.setValue(value);
      break;
    case 'select': {
      const values = node.selectType === 'select' ? value.split(/\s+/).filter(Boolean) : (value ? [value] : []);
      for (const v of values) {
        if (!node.getValueOption(v)) throw new CheckFailed(`${ref}: "${v}" is not one of its choices`);
      }
      if (node.selectType === 'select') node.selectValues(values);
      else node.selectValue(values[0] ?? null);
      break;
    }
    case 'rank':
      node.setValues(value.split(/\s+/).filter(Boolean));
      break;
    case 'trigger':
      // An acknowledge question is answered "OK" in the instance.
      node.setValue(value !== '');
      break;
    case 'upload':
      throw new CheckFailed(`${ref}: an upload question; give it a file with --image ${ref}=PATH`);
    default:
      throw new CheckFailed(`${ref}: a ${node.nodeType} node, which a person cannot answer`);
  }
}

const MEDIA_TYPES = {
  '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png', '.gif': 'image/gif',
  '.webp': 'image/webp', '.heic': 'image/heic', '.bmp': 'image/bmp',
};

async function setImage(node, ref, path) {
  if (node.nodeType !== 'upload') throw new CheckFailed(`${ref}: not an upload question (it is ${node.nodeType})`);
  const bytes = await readFile(path);
  const type = MEDIA_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
  // The engine keeps the File and names the instance value after it.
  node.setValue(new File([bytes], basename(path), { type }));
  return node.currentState.instanceValue;
}

function violationOf(node) {
  const v = node.validationState?.violation ?? null;
  return v && { condition: v.condition, message: v.message?.asString ?? null };
}

// ---------------------------------------------------------------------------
// fill mode

async function runFill(opts, engine, parseXml, out) {
  let answers;
  try {
    answers = JSON.parse(await readFile(opts.answers, 'utf8'));
  } catch (err) {
    throw new UsageError(`${opts.answers}: ${err.message}`);
  }
  if (answers === null || typeof answers !== 'object' || Array.isArray(answers)) {
    throw new UsageError(`${opts.answers} must hold a JSON object of reference -> value`);
  }

  const entry = (await getFormList(opts.server, parseXml)).find((f) => f.formID === opts.form);
  if (!entry) throw new CheckFailed(`${opts.form} is not in the form list`);
  const { xml, hashOk } = await downloadForm(entry);
  if (!hashOk) throw new CheckFailed(`${opts.form}: hash mismatch: list says ${entry.hash}`);
  const { instance } = await loadWithEngine(engine, entry, xml, parseXml);
  const root = instance.root;

  for (const [ref, value] of Object.entries(answers)) setAnswer(resolveNode(root, ref), ref, value);
  for (const [ref, value] of Object.entries(answers)) {
    const { relevant, instanceValue } = resolveNode(root, ref).currentState;
    if (!relevant) {
      // Not relevant once the form is filled, so left out of the submission.
      out.notRelevant.push(ref);
      log(`${ref}: answered but not relevant; the submission leaves it out`);
    } else if (instanceValue !== value) {
      // The engine wrote another text than the one given (a geopoint's "12"
      // becomes "12.0"): the server sees the engine's.
      out.normalized[ref] = instanceValue;
      log(`${ref}: set "${value}", the engine stored "${instanceValue}"`);
    }
  }

  for (const [ref, path] of opts.images) {
    const fileName = await setImage(resolveNode(root, ref), ref, path);
    out.uploads.push({ ref, path, fileName, via: 'engine: UploadNode.setValue(File)' });
    log(`${ref}: attached ${path} as ${fileName}`);
  }

  if (opts.violate) {
    // Done after the other answers, so that relevance and any constraint that
    // reads other questions see a filled form: like a person typing a wrong
    // value and then correcting it.
    const [ref, bad] = opts.violate;
    const node = resolveNode(root, ref);
    setAnswer(node, ref, bad);
    const v = violationOf(node);
    const reported = v?.condition === 'constraint';
    out.violation = { reported, condition: v?.condition ?? null, message: v?.message ?? null };
    log(`${ref}="${bad}": ${reported
      ? `violation reported: ${v.message ?? '(the form gives no message)'}` : 'NO constraint violation reported'}`);
    // Back to the answers file's value, or empty if it has none.
    setAnswer(node, ref, answers[ref] ?? '');
    if (!reported) throw new CheckFailed(`${ref}="${bad}" was not reported as a constraint violation`);
  }

  const payload = await root.prepareInstancePayload();
  const data = payload.data[0];
  const xmlFile = data.get('xml_submission_file');
  out.instanceXml = await xmlFile.text();
  const attachments = [...data.entries()].filter(([key]) => key !== 'xml_submission_file');
  out.files = attachments.map(([, file]) => file.name);
  const idEl = parseXml(out.instanceXml, 'instance').getElementsByTagNameNS('*', 'instanceID')[0];
  out.instanceID = idEl?.textContent.trim() || null;

  if (payload.status !== 'ready') {
    const problems = (payload.violations ?? []).map((v) => (v.reference
      ? `${v.reference}: ${v.violation.condition}${v.violation.message ? ` (${v.violation.message.asString})` : ''}`
      : JSON.stringify(v)));
    throw new CheckFailed(`the engine says the submission is ${payload.status}: ${problems.join('; ')}`);
  }
  if (!out.instanceID) throw new CheckFailed('the submission has no meta/instanceID');

  if (opts.post) await postSubmission(opts.server, out.instanceXml, attachments, out);
  return true;
}

// Sends a submission as ODK Collect does: HEAD first (expects 204), then one
// multipart/form-data POST with the instance and its attachments.
async function postSubmission(server, instanceXml, attachments, out) {
  const url = `${server}/submission`;
  const head = await fetch(url, { method: 'HEAD', headers: OPENROSA });
  const posted = { head: { status: head.status, headers: Object.fromEntries(head.headers) },
    status: null, headers: null, body: null };
  out.posted = posted;
  log(`HEAD ${url}: ${head.status}`);
  if (head.status !== 204) throw new CheckFailed(`HEAD ${url}: status ${head.status}, Collect wants 204`);

  const form = new FormData();
  form.append('xml_submission_file', new Blob([instanceXml], { type: 'text/xml' }), 'submission.xml');
  // One part per attachment, named by its file name.
  for (const [, file] of attachments) form.append(file.name, file, file.name);
  const res = await fetch(url, { method: 'POST', headers: OPENROSA, body: form });
  Object.assign(posted, { status: res.status, headers: Object.fromEntries(res.headers), body: await res.text() });
  log(`POST ${url}: ${res.status}`);
  if (res.status !== 201 && res.status !== 202) {
    throw new CheckFailed(`POST ${url}: status ${res.status}, wanted 201 or 202`);
  }
}

// ---------------------------------------------------------------------------

async function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`${err.message}\n${USAGE}`);
    console.log(JSON.stringify({ error: `usage: ${err.message}` }));
    return 2;
  }

  const engine = await loadEngine();
  const parser = new DOMParser();
  const parseXml = (text, what) => {
    const doc = parser.parseFromString(text, 'text/xml');
    if (doc.getElementsByTagName('parsererror').length) throw new CheckFailed(`${what}: not well-formed XML`);
    return doc;
  };

  // Filled in as the run goes, so that a failed run still shows how far it got.
  const out = opts.mode === 'load'
    ? { forms: [], error: null }
    : { formID: opts.form, violation: null, instanceXml: null, instanceID: null, files: [],
      uploads: [], normalized: {}, notRelevant: [], posted: null, error: null };
  try {
    const ok = opts.mode === 'load'
      ? await runLoad(opts, engine, parseXml, out)
      : await runFill(opts, engine, parseXml, out);
    console.log(JSON.stringify(out, null, 2));
    return ok ? 0 : 1;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n${USAGE}`);
      console.log(JSON.stringify({ error: `usage: ${err.message}` }));
      return 2;
    }
    // Anything else (a failed check, an unreachable server, an engine error)
    // is a failure of the run.
    log(err instanceof CheckFailed ? err.message : err.stack);
    // fetch() says only "fetch failed"; the cause says why (ECONNREFUSED...).
    out.error = err.cause ? `${err.message}: ${err.cause.code ?? err.cause.message}` : err.message;
    console.log(JSON.stringify(out, null, 2));
    return 1;
  }
}

process.exitCode = await main();
