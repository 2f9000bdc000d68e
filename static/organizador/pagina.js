// The organizer's console, its page: the namespace its files share (window.Server5KConsola),
// the words shown for states and actions, the page's helpers (templates mounted, notices,
// buttons that work once at a time) and times in the venue's zone. Loaded after the pages'
// shared helpers (static/comun.js, static/duracion.js) and before the console's other files, in
// the order templates/organizador.html gives; static/organizador.js, last, starts the console.
(function (root) {
  'use strict';

  var C = root.Server5KConsola = {};

  var main = document.getElementById('consola');
  var avisoEl = document.getElementById('aviso');
  var hechoEl = document.getElementById('hecho');

  var ESTADOS = { programada: 'Programada', en_curso: 'En curso', finalizada: 'Finalizada' };

  // Shared with the results pages and the judge app (static/comun.js): the element builder,
  // the clock's digits.
  var comun = root.Server5KComun;
  var pad = comun.pad;

  var ACCIONES = { anular: 'Anulado', restaurar: 'Restaurado', mover: 'Movido de equipo',
    corregir: 'Tiempo corregido', aceptar: 'Aceptado', manual: 'Tiempo en papel',
    ajustar: 'Ajuste de tiempos', estado: 'Estado del equipo', penalizacion: 'Penalización',
    oficializar: 'Resultados oficiales', reabrir: 'Resultados reabiertos', iniciar: 'Salida',
    detener: 'Fin de la carrera', reiniciar: 'Salida en falso', crear: 'Alta',
    editar: 'Cambio', eliminar: 'Baja', activar: 'Juez activado',
    desactivar: 'Juez desactivado', contrasena: 'Contraseña nueva', regla: 'Regla de puntuación',
    programar: 'Hora prevista', renombrar: 'Nombre cambiado', ocultar: 'Oculta del índice público',
    mostrar: 'Visible en el índice público' };

  // -- the page ---------------------------------------------------------------------------------
  function $(id) { return document.getElementById(id); }

  var el = comun.el;  // an element, its children written as text (static/comun.js)

  function fill(parent, children) {
    parent.textContent = '';
    children.forEach(function (child) { parent.appendChild(child); });
  }

  function mount(target, templateId) {
    target.textContent = '';
    target.appendChild(document.importNode($(templateId).content, true));
    return target;
  }

  function showAviso(message) {
    avisoEl.textContent = message || '';
    avisoEl.hidden = !message;
  }

  var hechoTimer = null;
  function showHecho(message) {
    hechoEl.textContent = message;
    hechoEl.hidden = false;
    clearTimeout(hechoTimer);
    hechoTimer = setTimeout(function () { hechoEl.hidden = true; }, 4000);
  }

  function formError(form, message) {
    var box = form.querySelector('.error');
    box.textContent = message || '';
    box.hidden = !message;
  }

  // A button does its work once at a time: a double click never does a thing twice.
  function once(button, work) {
    return function (event) {
      if (event) { event.preventDefault(); }
      if (button.disabled) { return; }
      button.disabled = true;
      Promise.resolve().then(work).catch(function (err) { showAviso(err.message); })
        .then(function () { button.disabled = false; });
    };
  }

  function act(button, work) {
    button.addEventListener('click', once(button, work));
  }

  // -- times --------------------------------------------------------------------------------------
  function formatMs(ms) {  // h:mm:ss.mmm, as the API writes times
    if (ms === null || ms === undefined) { return '—'; }
    var sign = ms < 0 ? '−' : '';
    ms = Math.abs(ms);
    var s = Math.floor(ms / 1000);
    return sign + Math.floor(s / 3600) + ':' + pad(Math.floor(s / 60) % 60) + ':' + pad(s % 60) +
      '.' + pad(ms % 1000, 3);
  }

  // Every time in the venue's zone (race.timezone, from the page), as the command line and
  // the results page show them, whatever this device's zone.
  var ZONA = document.body.getAttribute('data-zona') || undefined;

  function inZone(iso, options) {
    if (!iso) { return '—'; }
    var when = new Date(iso);
    if (isNaN(when)) { return iso; }
    try {
      return when.toLocaleString('es', Object.assign({ timeZone: ZONA }, options));
    } catch (e) {  // a zone this browser does not know: its own
      return when.toLocaleString('es', options);
    }
  }

  // A date and time typed in the venue's zone (a datetime-local value) as ISO 8601 UTC.
  function venueToIso(value) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(value);
    if (!m) { return value; }
    var wall = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]);
    var guess = wall;
    for (var i = 0; i < 2; i++) {  // the zone's offset at that moment (twice: across a change)
      var parts = {};
      try {
        new Intl.DateTimeFormat('en-US', { timeZone: ZONA, hourCycle: 'h23', year: 'numeric',
          month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric' })
          .formatToParts(new Date(guess)).forEach(function (p) { parts[p.type] = +p.value; });
      } catch (e) { return new Date(value).toISOString(); }  // unknown zone: this device's
      var shown = Date.UTC(parts.year, parts.month - 1, parts.day, parts.hour, parts.minute);
      guess = wall - (shown - guess);
    }
    return new Date(guess).toISOString();
  }

  function localTime(iso) {
    return inZone(iso, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
  }

  function localDateTime(iso) {
    return inZone(iso, { dateStyle: 'medium', timeStyle: 'short', hourCycle: 'h23' });
  }

  // Clock text, parsed as the server and the command line parse it (static/duracion.js).
  // A finish time: 19:45.2 (m:ss.f), 0:19:45.200 (h:mm:ss.fff) or milliseconds.
  function parseTiempo(text) { return root.Server5KDuracion.parse(text, false); }

  // A signed amount of time: +20s, -1.5s, +2:00 (m:ss), milliseconds or 0.
  function parseDuracion(text) { return root.Server5KDuracion.parse(text, true); }

  function signedSeconds(ms) {
    return (ms >= 0 ? '+' : '−') + (Math.abs(ms) / 1000).toFixed(1) + ' s';
  }

  // What a history row changed ({campo: valor}), as text.
  function change(value) {
    if (value === null || value === undefined) { return ''; }
    return Object.keys(value).map(function (k) { return k + ' ' + JSON.stringify(value[k]); }).join(', ');
  }

  Object.assign(C, { main: main, ESTADOS: ESTADOS, ACCIONES: ACCIONES, $: $, el: el, fill: fill,
    mount: mount, showAviso: showAviso, showHecho: showHecho, formError: formError, once: once,
    act: act, formatMs: formatMs, venueToIso: venueToIso, localTime: localTime,
    localDateTime: localDateTime, parseTiempo: parseTiempo, parseDuracion: parseDuracion,
    signedSeconds: signedSeconds, change: change });
}(window));
