// What the organizer's console, the results pages and the judge app share, in one file loaded
// before each page's own script (window.Server5KComun). No framework, no build step.
(function (root) {
  'use strict';

  // Bidirectional controls (U+202A-202E, U+2066-2069, U+200E/F, U+061C) in a name would reorder
  // what a page shows around it: taken out of every text the server sends but passwords (as the
  // server's templates do, handlers/pages.py).
  var BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
  function plainJson(text) {
    return JSON.parse(text, function (key, value) {
      return typeof value === 'string' && key !== 'password' ? value.replace(BIDI, '') : value;
    });
  }

  function pad(n, width) { n = String(n); while (n.length < (width || 2)) { n = '0' + n; } return n; }

  function clockText(ms) {  // h:mm:ss, a race clock
    var s = Math.max(0, Math.floor(ms / 1000));
    return Math.floor(s / 3600) + ':' + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60);
  }

  // el('li', {className: 'x', dataset: {a: 1}, aria: {label: 'y'}}, 'text', node, [nodes], ...):
  // an element whose children are text (always as text, never markup), nodes or lists of them;
  // null, undefined and false are skipped.
  function el(tag, props) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      if (key === 'dataset') {
        Object.keys(props.dataset).forEach(function (k) { node.dataset[k] = props.dataset[k]; });
      } else if (key === 'aria') {
        Object.keys(props.aria).forEach(function (k) { node.setAttribute('aria-' + k, props.aria[k]); });
      } else {
        node[key] = props[key];
      }
    });
    append(node, Array.prototype.slice.call(arguments, 2));
    return node;
  }

  function append(node, children) {
    children.forEach(function (child) {
      if (child === null || child === undefined || child === false) { return; }
      if (Array.isArray(child)) { return append(node, child); }
      node.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
    });
  }

  // The wait before reconnecting a live socket after ``retries`` failed tries: 1, 2, 4, 8...
  // seconds up to ``ceiling`` ms, with jitter so a thousand pages do not return at once.
  function backoff(retries, ceiling) {
    return Math.min(ceiling, 1000 * Math.pow(2, retries)) * (0.75 + Math.random() * 0.5);
  }

  root.Server5KComun = { plainJson: plainJson, pad: pad, clockText: clockText, el: el,
    backoff: backoff };
}(window));
