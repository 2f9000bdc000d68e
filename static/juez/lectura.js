// Server5K judge app (JUEZ.md): a team's records as the judge sees them, this phone's taps and
// the server's read-back (GET /api/equipos/{eid}/registros/, read through juez.js's api()),
// merged by id, and their lines on the screen. Loaded after static/comun.js and before juez.js
// (window.Server5KJuezLectura). It keeps only the last read-back; the taps are juez.js's.
//
// What the read-back adds to what the phone knows:
// - a record of the team the server holds and this phone does not (sent by another phone of
//   the judge, or by this one before its data was cleared; a paper time the organizer entered)
//   is listed as "Enviado" and counts in "N de 15", as the phone's own would;
// - a record the organizer voided is listed, marked "anulado", and no longer counts;
// - a tap this phone sent whose team no longer holds it (the organizer moved it to another
//   team) is marked "movido a otro equipo" and no longer counts here (it counts in the team
//   that holds it now, where it is listed as the server's).
// A record counts for the start this phone times against (`started`): the phone's taps of that
// start (not those before it), and the server's records not flagged as arrived before it.
(function (root) {
  'use strict';

  // lectura: {pedida: Date.now() when the read-back was asked, registros: [...]} or undefined
  // (not read yet: the phone's taps alone). taps: this account's taps on the phone, oldest first.
  function teamView(equipoId, taps, lectura, started) {
    var server = {};
    var local = {};
    var registros = lectura ? lectura.registros : [];
    registros.forEach(function (r) { server[r.id] = r; });
    var items = [];
    taps.forEach(function (t, i) {
      local[t.id] = t;
      if (t.equipo_id !== equipoId) { return; }
      var r = server[t.id];
      var nota = r && r.anulado ? 'anulado por el organizador' :
        !r && lectura && t.estado === 'enviado' && (t.confirmado_en || 0) < lectura.pedida ?
          'movido a otro equipo' : null;
      items.push({ tap: t, nota: nota, orden: i,
        cuenta: t.started_at === started && t.estado !== 'antes' && !nota,
        clave: t.timestamp ? Date.parse(t.timestamp) : Infinity });
    });
    registros.forEach(function (r, i) {
      if (local[r.id] && local[r.id].equipo_id === equipoId) { return; }
      items.push({ registro: r, orden: taps.length + i,
        nota: r.anulado ? 'anulado por el organizador' : local[r.id] ? 'movido aquí por el organizador' :
          r.origen === 'manual' ? 'anotado por el organizador' : 'desde otro móvil',
        cuenta: !!started && !r.anulado && !r.antes_de_salida,
        clave: Date.parse(r.timestamp) || 0 });
    });
    // Newest first (a tap still without a time is the newest).
    items.sort(function (a, b) { return b.clave - a.clave || b.orden - a.orden; });
    return { items: items, cuenta: items.filter(function (x) { return x.cuenta; }).length };
  }

  // The reader: each team of the judge read back, one request at a time, at most every
  // `every` ms unless forced (sign-in, reload); a network failure ends the round and lets the
  // next poll try again. options: api(method, path), taps() (this account's), started(),
  // held(tap, pedida) (a tap of the phone the server holds: true when that changed it),
  // done(changed taps).
  function reader(options) {
    var lecturas = {};  // equipo_id -> {pedida, registros}
    var last = 0;
    var reading = false;
    var round = 0;      // forget() drops a round under way

    function read(equipos, force) {
      if (reading || (!force && Date.now() - last < options.every)) { return; }
      reading = true;
      last = Date.now();
      var mine = round;
      var changed = [];
      equipos = equipos.slice();
      (function next(i) {
        if (mine !== round) { return; }
        if (i >= equipos.length) {
          reading = false;
          options.done(changed);
          return;
        }
        var pedida = Date.now();
        options.api('GET', '/api/equipos/' + Number(equipos[i].id) + '/registros/').then(function (answer) {
          if (mine !== round) { return; }
          var registros = (answer && answer.registros) || [];
          lecturas[equipos[i].id] = { pedida: pedida, registros: registros };
          var held = {};
          registros.forEach(function (r) { held[r.id] = true; });
          options.taps().forEach(function (t) {
            if (held[t.id] && options.held(t, pedida)) { changed.push(t); }
          });
          next(i + 1);
        }, function (err) {
          if (err && err.status === 0) { last = 0; return next(equipos.length); }  // offline
          next(i + 1);  // (a team no longer this judge's: the others still)
        });
      }(0));
    }

    return {
      read: read,
      teamView: function (equipoId) {
        return teamView(equipoId, options.taps(), lecturas[equipoId], options.started());
      },
      forget: function () { lecturas = {}; last = 0; reading = false; round++; }
    };
  }

  var el = root.Server5KComun.el, pad = root.Server5KComun.pad;

  function tiempoText(ms) {  // h:mm:ss.d, as a judge reads a stopwatch
    ms = Math.max(0, Math.floor(ms));
    var s = Math.floor(ms / 1000);
    return Math.floor(s / 3600) + ':' + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60) + '.' +
      Math.floor((ms % 1000) / 100);
  }

  // One line of the team's list (all of it text, never markup): a tap of this phone, with its
  // state ("Pendiente", "Enviado", or "No se envía" before the start), or a record of the server.
  function itemNode(x, started) {
    var t = x.tap, r = x.registro;
    if (r) {
      return el('li', { className: 'enviado remoto' + (r.anulado ? ' anulado' : ''), dataset: { registro: r.id } },
        el('span', { className: 'valor' }, r.ausente ? 'Ausente' : tiempoText(r.tiempo_recibido)),
        el('span', { className: 'marca' }, 'Enviado'),
        el('span', { className: 'anterior' }, x.nota));
    }
    var state = t.estado === 'enviado' ? 'Enviado' : t.estado === 'antes' ? 'No se envía' : 'Pendiente';
    return el('li', { className: t.estado + (x.nota ? ' anulado' : ''), dataset: { registro: t.id } },
      el('span', { className: 'valor' }, t.ausente ? 'Ausente' : t.estado === 'antes' ?
        'antes de la salida (' + tiempoText(-t.antes_ms) + ')' : t.tiempo !== null ? tiempoText(t.tiempo) :
        t.started_at ? 'sin hora aún' : 'sin salida aún'),
      el('span', { className: 'marca' }, state),
      t.started_at !== started && t.started_at ? el('span', { className: 'anterior' }, 'salida anulada') : null,
      x.nota ? el('span', { className: 'anterior' }, x.nota) : null,
      // Timed from the offset of an earlier page life, carried by the phone's own clock (no
      // sample in this one yet): less sure than the rest.
      t.fuente === 'pared' && t.tiempo !== null ? el('span', { className: 'anterior' },
        'hora estimada con el reloj del móvil (±' + t.unc + ' ms o más)') : null,
      t.error && t.estado !== 'enviado' ? el('span', { className: 'error' }, t.error) : null);
  }

  root.Server5KJuezLectura = { reader: reader, teamView: teamView, itemNode: itemNode, tiempoText: tiempoText };
}(window));
