// Clock text as an organizer types it, the one grammar of it: models.parse_duration on the
// server (the command line's parser) and this copy for the console, both tested on the same
// table of cases (tests/duration_cases.json). Milliseconds (1185200, 250ms), seconds (30s,
// +20s, -1.5s) or clock text (19:45.2, 0:19:45.200); a sign only where one is allowed; the
// decimal mark a point or a comma, the minus a hyphen or U+2212.
(function (root) {
  'use strict';

  var FORMA = new RegExp('^([+\\-\\u2212])?(?:([0-9]+)(?:ms)?|([0-9]+(?:[.,][0-9]{1,3})?)s|' +
    '(?:([0-9]+):)?([0-9]{1,2}):([0-9]{1,2}(?:[.,][0-9]{1,3})?))$');

  function decimal(text) { return Number(text.replace(',', '.')); }

  function parse(text, signed) {
    var m = typeof text === 'string' ? FORMA.exec(text.trim()) : null;
    if (!m || (m[1] && !signed)) {
      throw new Error(signed ? 'Escriba un tiempo con signo, como +20s, -1.5s o +2:00 (un número solo son milisegundos).' :
        'Escriba el tiempo como 19:45.2 (minutos:segundos) o 0:19:45.200 (un número solo son milisegundos).');
    }
    var value;
    if (m[2] !== undefined) {
      value = Number(m[2]);
    } else if (m[3] !== undefined) {
      value = Math.round(decimal(m[3]) * 1000);
    } else {
      var seconds = decimal(m[6]);
      if ((m[4] !== undefined && Number(m[5]) > 59) || seconds >= 60) {
        throw new Error('Los minutos y los segundos llegan hasta 59.');
      }
      value = (Number(m[4] || 0) * 3600 + Number(m[5]) * 60) * 1000 + Math.round(seconds * 1000);
    }
    return m[1] === '-' || m[1] === '\u2212' ? -value : value;
  }

  root.Server5KDuracion = { parse: parse };
}(window));
