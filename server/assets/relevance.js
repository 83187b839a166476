// Skip logic on the entry page: a question whose condition (its `relevant`
// expression) is false is hidden, and shown again as soon as it holds. The
// conditions come drawn into the page as the JSON trees the server parsed
// (schemas/src/expr); this evaluates them with the same typing rules
// (docs/FORMS.md). Hiding never clears an input: what was typed stays in the
// page, and the server drops it on save only if the question still does not apply.
(function relevance() {
  'use strict';
  const form = document.querySelector('form.entry[data-logic]');
  if (!form) return;
  const names = JSON.parse(form.dataset.logic);

  // Values: a string, a number, a boolean, or a date {days, text}.
  const isDate = (v) => v !== null && typeof v === 'object';
  const DAY = 86400000;

  // A date, or a date and time in its own clock (the offset, if written, is not
  // applied: date-times compare in their own local time, as on the server).
  function daysOf(text) {
    const m = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?$/
      .exec(String(text).trim());
    if (!m) return null;
    const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +(m[4] || 0), +(m[5] || 0), +(m[6] || 0));
    const d = new Date(ms);
    // 2026-02-30 is not a date, though Date.UTC would roll it into March.
    if (d.getUTCFullYear() !== +m[1] || d.getUTCMonth() !== +m[2] - 1 || d.getUTCDate() !== +m[3]) return null;
    return ms / DAY;
  }
  const date = (text) => { const d = daysOf(text); return d === null ? '' : { days: d, text }; };

  function num(v) {
    if (typeof v === 'number') return v;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (isDate(v)) return v.days;
    const t = String(v).trim();
    return /^-?(\d+\.?\d*|\.\d+)$/.test(t) ? parseFloat(t) : NaN;
  }
  function str(v) {
    if (typeof v === 'string') return v;
    if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v === 0 ? 0 : v);
    if (typeof v === 'boolean') return String(v);
    return v.text;
  }
  function bool(v) {
    if (typeof v === 'boolean') return v;
    if (typeof v === 'number') return v !== 0 && !Number.isNaN(v);
    if (isDate(v)) return true;
    return v.length > 0;
  }
  function asDays(v) {
    if (isDate(v)) return v.days;
    if (typeof v === 'string') return daysOf(v);
    return null;
  }
  const numeric = (v) => typeof v === 'number' || typeof v === 'boolean';
  function equal(a, b) {
    if (typeof a === 'boolean' || typeof b === 'boolean') return bool(a) === bool(b);
    if (typeof a === 'number' || typeof b === 'number') return num(a) === num(b);
    if (isDate(a) || isDate(b)) {
      const x = asDays(a), y = asDays(b);
      return x !== null && y !== null && x === y;
    }
    return str(a) === str(b);
  }
  function ordered(a, b) {
    if (!numeric(a) && !numeric(b) && (isDate(a) || isDate(b))) {
      const x = asDays(a), y = asDays(b);
      return [x === null ? NaN : x, y === null ? NaN : y];
    }
    return [num(a), num(b)];
  }

  // Where `${name}` is, seen from the question at `from` (`crew[2].age`): the
  // same item of every repeat the two share.
  function concrete(steps, from) {
    const items = [...from.matchAll(/\[(\w+)\]/g)].map((m) => m[1]);
    let k = 0;
    return steps.map(([name, repeat], i) =>
      repeat && i < steps.length - 1 ? `${name}[${items[k++]}]` : name).join('.');
  }
  const inputs = (name) => form.querySelectorAll(`[name="${CSS.escape(name)}"]`);
  function read(path, type) {
    const name = `f.${path}`;
    const all = [...inputs(name)];
    switch (type) {
      case 'select_multiple': return all.filter((i) => i.checked).map((i) => i.value).join(' ');
      case 'boolean': {
        const on = all.find((i) => i.checked);
        return on ? on.value === 'true' : '';
      }
      case 'acknowledge': return all.some((i) => i.checked) ? 'OK' : '';
      case 'geopoint': {
        const lat = inputs(`${name}.lat`)[0], lon = inputs(`${name}.lon`)[0];
        return lat && lon && lat.value.trim() && lon.value.trim() ? `${lat.value.trim()} ${lon.value.trim()}` : '';
      }
      case 'integer': case 'decimal': {
        const t = all[0] ? all[0].value.trim().replace(',', '.') : '';
        return t === '' ? '' : num(t);
      }
      case 'date': case 'dateTime': return all[0] ? date(all[0].value) : '';
      default: return all[0] ? all[0].value : '';
    }
  }
  function count(steps, from) {
    const path = concrete(steps, from);
    const row = new RegExp(`^f\\.${path.replace(/[.[\]]/g, '\\$&')}\\[\\w+\\]\\._row$`);
    return [...form.querySelectorAll('input[type="hidden"][name$="._row"]')]
      .filter((i) => row.test(i.name)).length;
  }

  function today() {
    const n = new Date();
    return date(`${n.getFullYear()}-${String(n.getMonth() + 1).padStart(2, '0')}-${String(n.getDate()).padStart(2, '0')}`);
  }
  function now() {
    const n = new Date();
    const local = new Date(n.getTime() - n.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
    return date(local);
  }

  function call(f, args, ctx) {
    const a = (i) => (i < args.length ? ev(args[i], ctx) : '');
    const s = (i) => str(a(i));
    switch (f) {
      case 'selected': return s(0).split(/\s+/).filter(Boolean).includes(s(1).trim());
      case 'count-selected': return s(0).split(/\s+/).filter(Boolean).length;
      case 'string-length': return [...s(0)].length;
      case 'regex': try { return new RegExp(s(1)).test(s(0)); } catch (e) { return false; }
      case 'contains': return s(0).includes(s(1));
      case 'starts-with': return s(0).startsWith(s(1));
      case 'ends-with': return s(0).endsWith(s(1));
      case 'today': return today();
      case 'now': return now();
      case 'date': {
        const v = a(0);
        if (isDate(v)) return date(v.text.slice(0, 10));
        if (typeof v === 'number') {
          return Number.isFinite(v) ? date(new Date(Math.floor(v) * DAY).toISOString().slice(0, 10)) : NaN;
        }
        const d = date(str(v).slice(0, 10));
        return d === '' ? NaN : d;
      }
      case 'decimal-date-time': { const d = asDays(a(0)); return d === null ? num(a(0)) : d; }
      case 'int': return Math.trunc(num(a(0)));
      case 'number': return num(a(0));
      case 'string': return s(0);
      case 'boolean': return bool(a(0));
      case 'not': return !bool(a(0));
      case 'true': return true;
      case 'false': return false;
      case 'if': return bool(a(0)) ? a(1) : a(2);
      case 'coalesce': { const v = a(0); return str(v) === '' ? a(1) : v; }
      case 'concat': return args.map((_, i) => s(i)).join('');
      case 'count': {
        const def = names[args[0][1]];
        return def ? count(def.steps, ctx.path) : 0;
      }
      default: return '';
    }
  }

  function ev(node, ctx) {
    switch (node[0]) {
      case 'num': return node[1];
      case 'str': return node[1];
      case 'dot': return read(ctx.path, ctx.type);
      case 'ref': {
        const def = names[node[1]];
        return def ? read(concrete(def.steps, ctx.path), def.type) : '';
      }
      case 'neg': return -num(ev(node[1], ctx));
      case 'regex': return new RegExp(node[2]).test(str(ev(node[1], ctx)));
      case 'call': return call(node[1], node[2], ctx);
      case 'op': {
        const op = node[1];
        if (op === 'or') return bool(ev(node[2], ctx)) || bool(ev(node[3], ctx));
        if (op === 'and') return bool(ev(node[2], ctx)) && bool(ev(node[3], ctx));
        const x = ev(node[2], ctx), y = ev(node[3], ctx);
        switch (op) {
          case '=': return equal(x, y);
          case '!=': return !equal(x, y);
          case '<': case '<=': case '>': case '>=': {
            const [p, q] = ordered(x, y);
            return op === '<' ? p < q : op === '<=' ? p <= q : op === '>' ? p > q : p >= q;
          }
          case '+': return num(x) + num(y);
          case '-': return num(x) - num(y);
          case '*': return num(x) * num(y);
          case 'div': return num(x) / num(y);
          case 'mod': return num(x) % num(y);
          default: return '';
        }
      }
      default: return '';
    }
  }

  function update() {
    for (const el of form.querySelectorAll('[data-relevant]')) {
      if (el.closest('template')) continue;
      const ctx = { path: el.dataset.path, type: el.dataset.type };
      let shown = true;
      try {
        shown = bool(ev(JSON.parse(el.dataset.relevant), ctx));
      } catch (e) {
        shown = true; // A condition that cannot be read must not hide a question.
      }
      el.hidden = !shown;
    }
  }
  form.addEventListener('input', update);
  form.addEventListener('change', update);
  // Items added or removed by the repeat buttons change what count() sees.
  new MutationObserver(update).observe(form, { childList: true, subtree: true });
  update();
})();
