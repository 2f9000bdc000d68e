// Server5K organizer's console. No framework, no build step: one file served by the server, the
// same REST API the command line uses (there is no second way to change data).
//
// Where the tokens live: the refresh token in sessionStorage (it survives a reload and a phone
// putting the tab to sleep, for as long as the refresh token lives; it dies with the tab, so a
// borrowed laptop forgets it, and other tabs and sites never see it), the access token in memory
// only. Neither ever goes into a URL: the live socket opens with a single-use 30-second ticket.
// Every value from the server is written as text (textContent), never as markup.
//
// Live updates: /ws/organizador/{id}/ says what changed; the console then reads the judges
// board, the records and the standings again (one read in flight at a time, and one more if
// something changed meanwhile).
(function () {
  'use strict';

  var KEY = 'server5k.organizador.refresh';
  var main = document.getElementById('consola');
  var avisoEl = document.getElementById('aviso');
  var hechoEl = document.getElementById('hecho');
  var enVivoEl = document.getElementById('en-vivo');
  var quienEl = document.getElementById('quien');
  var salirEl = document.getElementById('salir');

  var ESTADOS = { programada: 'Programada', en_curso: 'En curso', finalizada: 'Finalizada' };

  // Shared with the results pages and the judge app (static/comun.js): JSON with bidirectional
  // controls taken out, the clock's digits, the reconnect backoff.
  var comun = window.Server5KComun;
  var plainJson = comun.plainJson, pad = comun.pad, clockText = comun.clockText;
  var ESTADOS_EQUIPO = { ok: 'En carrera', dns: 'No salió (DNS)', dnf: 'No terminó (DNF)',
    dsq: 'Descalificado (DSQ)' };
  var ACCIONES = { anular: 'Anulado', restaurar: 'Restaurado', mover: 'Movido de equipo',
    corregir: 'Tiempo corregido', aceptar: 'Aceptado', manual: 'Tiempo en papel',
    ajustar: 'Ajuste de tiempos', estado: 'Estado del equipo', penalizacion: 'Penalización',
    oficializar: 'Resultados oficiales', reabrir: 'Resultados reabiertos', iniciar: 'Salida',
    detener: 'Fin de la carrera', reiniciar: 'Salida en falso', crear: 'Alta',
    editar: 'Cambio', eliminar: 'Baja', activar: 'Juez activado',
    desactivar: 'Juez desactivado', contrasena: 'Contraseña nueva', regla: 'Regla de puntuación',
    programar: 'Hora prevista', renombrar: 'Nombre cambiado', ocultar: 'Oculta del índice público',
    mostrar: 'Visible en el índice público' };
  var REGLAS = [['suma', 'Suma de los mejores tiempos'], ['promedio', 'Media de los mejores tiempos'],
    ['puntos', 'Por puestos (como en cross)']];

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
  function parseTiempo(text) { return window.Server5KDuracion.parse(text, false); }

  // A signed amount of time: +20s, -1.5s, +2:00 (m:ss), milliseconds or 0.
  function parseDuracion(text) { return window.Server5KDuracion.parse(text, true); }

  function signedSeconds(ms) {
    return (ms >= 0 ? '+' : '−') + (Math.abs(ms) / 1000).toFixed(1) + ' s';
  }

  // -- the API ------------------------------------------------------------------------------------
  var session = { access: null, refresh: sessionStorage.getItem(KEY), user: null };

  function ApiError(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
  ApiError.prototype = Object.create(Error.prototype);

  function describe(status, body) {
    if (body && body.detail) {
      var message = body.detail;
      var extra = Object.keys(body.errors || {}).map(function (k) { return body.errors[k]; })
        .filter(function (words) { return message.indexOf(words) < 0; }).slice(0, 3);
      return extra.length ? message + ' ' + extra.join(' ') : message;
    }
    if (status === 0) { return 'No se pudo contactar con el servidor: compruebe la red.'; }
    return 'El servidor respondió con un error (' + status + ').';
  }

  // One request: the parsed JSON (or a Blob, or null for 204), or an ApiError.
  function request(method, path, options) {
    options = options || {};
    var headers = {};
    var body;
    if (options.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(options.body);
    } else if (options.raw !== undefined) {
      headers['Content-Type'] = options.contentType;
      body = options.raw;
    }
    if (options.auth !== false && session.access) {
      headers.Authorization = 'Bearer ' + session.access;
    }
    return fetch(path, { method: method, headers: headers, body: body, cache: 'no-store',
      credentials: 'omit' })
      .catch(function () { throw new ApiError(0, 'network', describe(0)); })
      .then(function (response) {
        if (response.status === 204) { return null; }
        if (response.ok && options.blob) { return response.blob(); }
        var parsed = response.text().then(plainJson).catch(function () { return null; });
        return parsed.then(function (data) {
          if (!response.ok) {
            throw new ApiError(response.status, data && data.code, describe(response.status, data));
          }
          return data;
        });
      });
  }

  var refreshing = null;
  function refreshAccess() {
    if (!refreshing) {
      refreshing = request('POST', '/api/token/refresh/', { body: { refresh: session.refresh },
        auth: false })
        .then(function (answer) {
          session.access = answer.access;
          if (answer.refresh) { keepRefresh(answer.refresh); }
        })
        .finally(function () { refreshing = null; });
    }
    return refreshing;
  }

  function keepRefresh(token) {
    session.refresh = token;
    sessionStorage.setItem(KEY, token);
  }

  // An authenticated request; an expired access token is refreshed once and the request retried.
  // A session that can no longer be refreshed ends: back to the sign-in screen.
  function api(method, path, options) {
    return request(method, path, options).catch(function (err) {
      if (err.status !== 401 || !session.refresh || (options && options.auth === false)) {
        throw err;
      }
      return refreshAccess().then(function () {
        return request(method, path, options);
      }, function (refreshErr) {
        if (refreshErr.status === 401) {
          signOut('La sesión terminó (' + refreshErr.message + '). Vuelva a entrar.');
        }
        throw refreshErr;
      });
    });
  }

  function saveFile(blob, filename) {
    var url = URL.createObjectURL(blob);
    var link = el('a', { href: url, download: filename });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }

  function download(path, filename) {
    return api('GET', path, { blob: true }).then(function (blob) { saveFile(blob, filename); });
  }

  // -- the dialog: every confirmation and every reason ("Motivo") ----------------------------------
  // ask({titulo, texto, campos: [{name, label, type, options, value, required}], aceptar,
  //      accion(values) -> promise}) resolves true once accion succeeded, false if cancelled. The
  // dialog stays open while accion runs (its button disabled) and shows its error if it fails.
  var dialog = $('dialogo');
  var dialogForm = $('dialogo-form');
  var dialogAccept = $('dialogo-aceptar');
  var dialogCancel = $('dialogo-cancelar');
  var dialogState = null;

  function ask(spec) {
    if (dialogState) { return Promise.resolve(false); }
    $('dialogo-titulo').textContent = spec.titulo;
    var texto = $('dialogo-texto');
    fill(texto, [].concat(spec.texto || []).map(function (part) {
      return typeof part === 'string' ? el('p', {}, part) : part;
    }));
    var campos = $('dialogo-campos');
    fill(campos, (spec.campos || []).map(field));
    formError(dialogForm, '');
    dialogAccept.textContent = spec.aceptar || 'Aceptar';
    dialogAccept.disabled = false;
    dialogCancel.hidden = !!spec.soloCerrar;
    return new Promise(function (resolve) {
      dialogState = { spec: spec, resolve: resolve, busy: false };
      dialog.showModal();
      var first = campos.querySelector('input, select');
      if (first) { first.focus(); }
    });
  }

  function field(spec) {
    var control;
    if (spec.options) {
      control = el('select', { name: spec.name });
      spec.options.forEach(function (option) {
        control.appendChild(el('option', { value: String(option[0]) }, option[1]));
      });
    } else {
      control = el('input', { name: spec.name, type: spec.type || 'text', autocomplete: 'off' });
      if (spec.maxLength) { control.maxLength = spec.maxLength; }
    }
    if (spec.value !== undefined && spec.value !== null) { control.value = String(spec.value); }
    control.required = !!spec.required;
    return el('label', {}, spec.label + ' ', control);
  }

  function closeDialog(result) {
    var state = dialogState;
    dialogState = null;
    dialog.close();
    if (state) { state.resolve(result); }
  }

  dialogForm.addEventListener('submit', function (event) {
    event.preventDefault();
    var state = dialogState;
    if (!state || state.busy) { return; }
    var values = {};
    Array.prototype.forEach.call(dialogForm.querySelectorAll('[name]'), function (control) {
      values[control.name] = control.value;
    });
    state.busy = true;
    dialogAccept.disabled = true;
    formError(dialogForm, '');
    Promise.resolve().then(function () { return state.spec.accion && state.spec.accion(values); })
      .then(function () { closeDialog(true); }, function (err) {
        state.busy = false;
        dialogAccept.disabled = false;
        formError(dialogForm, err.message);
      });
  });
  dialogCancel.addEventListener('click', function () {
    if (dialogState && !dialogState.busy) { closeDialog(false); }
  });
  dialog.addEventListener('cancel', function (event) {  // Escape
    event.preventDefault();
    if (dialogState && !dialogState.busy) { closeDialog(false); }
  });

  var MOTIVO = { name: 'motivo', label: 'Motivo', required: true, maxLength: 500 };

  // -- signing in and out -------------------------------------------------------------------------
  function showSignedIn() {
    quienEl.textContent = session.user ? session.user.username : '';
    quienEl.hidden = !session.user;
    salirEl.hidden = !session.user;
  }

  function showLogin(message) {
    leaveCompetition();
    main.dataset.pantalla = 'entrar';
    mount(main, 't-entrar');
    var form = $('form-entrar');
    formError(form, message);
    var button = form.querySelector('button[type=submit]');
    form.addEventListener('submit', once(button, function () {
      formError(form, '');
      return signIn(form.username.value.trim(), form.password.value).then(function () {
        route();
      }, function (err) { formError(form, err.message); });
    }));
    form.username.focus();
  }

  function signIn(username, password) {
    if (!username || !password) {
      return Promise.reject(new ApiError(400, 'validation_error',
        'Escriba su usuario y su contraseña.'));
    }
    return request('POST', '/api/token/', { body: { username: username, password: password },
      auth: false })
      .then(function (tokens) {
        session.access = tokens.access;
        return request('GET', '/api/me/').then(function (me) {
          if (!me.user.organizador) {
            session.access = null;
            throw new ApiError(403, 'organizer_only',
              'Esta cuenta es de un juez: la consola es solo para organizadores.');
          }
          keepRefresh(tokens.refresh);
          session.user = me.user;
          showSignedIn();
        });
      });
  }

  function signOut(message) {
    session.access = null;
    session.refresh = null;
    session.user = null;
    sessionStorage.removeItem(KEY);
    if (dialogState) { closeDialog(false); }
    showSignedIn();
    showLogin(message);
  }

  salirEl.addEventListener('click', function () {
    signOut('');
    history.replaceState(null, '', location.pathname);
  });

  // -- screens --------------------------------------------------------------------------------------
  function parseHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ''));
    var cid = Number(params.get('c'));
    return { cid: cid > 0 ? cid : null, tab: params.get('t') || 'carrera' };
  }

  function route() {
    if (!session.user) { return showLogin(''); }
    showAviso('');
    var place = parseHash();
    if (place.cid) {
      return openCompetition(place.cid, place.tab);
    }
    leaveCompetition();
    showCompetitions();
  }
  window.addEventListener('hashchange', route);

  function showCompetitions() {
    main.dataset.pantalla = 'competencias';
    mount(main, 't-competencias');
    var list = $('competencias');
    api('GET', '/api/competencias/').then(function (answer) {
      fill(list, answer.competencias.map(function (c) {
        return el('li', { className: 'competencia' },
          el('a', { href: '#c=' + c.id }, c.nombre),
          el('span', { className: 'estado estado-' + c.estado }, ESTADOS[c.estado] || c.estado),
          c.fecha_hora ? el('span', { className: 'sub' }, localDateTime(c.fecha_hora)) : null,
          c.oculta ? el('span', { className: 'pildora' }, 'Oculta del índice público') : null);
      }));
      if (!answer.competencias.length) {
        fill(list, [el('li', { className: 'sub' }, 'Todavía no hay competencias: cree la primera.')]);
      }
    }, function (err) { showAviso(err.message); });
    var form = $('form-competencia');
    form.addEventListener('submit', once(form.querySelector('button[type=submit]'), function () {
      formError(form, '');
      var body = { nombre: form.nombre.value };
      if (form.fecha_hora.value) { body.fecha_hora = venueToIso(form.fecha_hora.value); }
      return api('POST', '/api/competencias/', { body: body }).then(function (comp) {
        showHecho('Competencia creada: ' + comp.nombre);
        location.hash = '#c=' + comp.id + '&t=plantilla';
      }, function (err) { formError(form, err.message); });
    }));
  }

  // -- one competition ------------------------------------------------------------------------------
  var state = null;  // {cid, tab, comp, board, records, results, audit, filtro, limite, ...}

  function openCompetition(cid, tab) {
    if (!state || state.cid !== cid) {
      leaveCompetition();
      state = { cid: cid, tab: tab, comp: null, board: null, records: null, results: null,
        audit: null, limite: 200, filtroEquipo: '', filtroJuez: '', offset: 0, loading: false,
        again: false, socket: null, retries: 0, closed: false, csv: null, categoria: null };
      main.dataset.pantalla = 'competencia';
      mount(main, 't-competencia');
      act($('renombrar'), renameCompetition);
      act($('ocultar'), toggleListing);
      Array.prototype.forEach.call(main.querySelectorAll('[data-pestana]'), function (link) {
        link.href = '#c=' + cid + '&t=' + link.dataset.pestana;
      });
      connect();
    }
    state.tab = tab;
    Array.prototype.forEach.call(main.querySelectorAll('[data-pestana]'), function (link) {
      var current = link.dataset.pestana === tab;
      link.classList.toggle('activa', current);
      if (current) { link.setAttribute('aria-current', 'page'); } else { link.removeAttribute('aria-current'); }
    });
    mountPanel();
    load();
  }

  function leaveCompetition() {
    if (!state) { return; }
    state.closed = true;
    if (state.socket) { state.socket.close(); }
    state = null;
    enVivoEl.hidden = true;
  }

  // Read what the console shows; one read at a time, and one more if asked meanwhile.
  function load() {
    var mine = state;
    if (!mine) { return; }
    if (mine.loading) { mine.again = true; return; }
    mine.loading = true;
    var base = '/api/competencias/' + mine.cid + '/';
    var reads = [api('GET', base + 'jueces/'), api('GET', base + 'registros/'),
      api('GET', base + 'resultados/'),
      mine.tab === 'resultados' ? api('GET', base + 'auditoria/') : Promise.resolve(null)];
    Promise.all(reads).then(function (answers) {
      if (state !== mine) { return; }
      showAviso('');
      var signature = JSON.stringify([answers[0], answers[1], answers[2].clasificacion,
        answers[2].competencia, answers[2].regla, answers[2].categorias, answers[3]]);  // (not the standings' server_time)
      if (signature === mine.signature) { return; }  // nothing changed: keep the page as it is
      mine.signature = signature;
      mine.board = answers[0];
      mine.comp = answers[0].competencia;
      mine.records = answers[1].registros;
      mine.results = answers[2];
      mine.audit = answers[3] ? answers[3].acciones : mine.audit;
      render();
    }, function (err) {
      if (state !== mine) { return; }
      showAviso(err.status === 404 ? 'Esa competencia no existe.' : err.message);
    }).then(function () {
      mine.loading = false;
      if (mine.again && state === mine) { mine.again = false; load(); }
    });
  }

  function connect() {
    var mine = state;
    api('POST', '/api/organizador/ws-ticket/').then(function (answer) {
      if (state !== mine || mine.closed) { return; }
      var scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
      var socket = new WebSocket(scheme + location.host + '/ws/organizador/' + mine.cid +
        '/?ticket=' + encodeURIComponent(answer.ticket));
      mine.socket = socket;
      socket.onmessage = function (event) {
        var message;
        try { message = plainJson(event.data); } catch (e) { return; }
        if (message.type === 'conexion.establecida') {
          mine.retries = 0;
          mine.offset = Date.parse(message.data.server_time) - Date.now();
          showLive(true);
          load();
        } else if (message.type === 'cambios') {
          load();
        }
      };
      socket.onclose = function (event) {
        if (state !== mine || mine.closed) { return; }
        showLive(false);
        if (event.code === 1008) {
          signOut('Su sesión ya no vale (cambió la contraseña o se desactivó la cuenta). Vuelva a entrar.');
          return;
        }
        reconnectLater(mine);
      };
    }, function () {
      if (state === mine && !mine.closed) { showLive(false); reconnectLater(mine); }
    });
  }

  function reconnectLater(mine) {
    var delay = comun.backoff(mine.retries, 15000);
    mine.retries += 1;
    setTimeout(function () { if (state === mine && !mine.closed) { connect(); } }, delay);
  }

  function showLive(online) {
    enVivoEl.hidden = false;
    enVivoEl.textContent = online ? '● En vivo' : '○ Sin conexión en vivo: reintentando…';
    enVivoEl.className = 'en-vivo' + (online ? '' : ' perdida');
    main.dataset.conexion = online ? 'en-vivo' : 'perdida';
  }

  // -- what a competition's data says ---------------------------------------------------------------
  function judgesById() {
    var map = {};
    (state.board ? state.board.jueces : []).forEach(function (j) { map[j.id] = j; });
    return map;
  }

  // Every team, by dorsal: the standings' rows (status, penalty) with the board's (judge, category).
  function teams() {
    var byId = {};
    (state.results ? state.results.clasificacion : []).forEach(function (row) {
      byId[row.equipo_id] = { id: row.equipo_id, nombre: row.equipo, dorsal: row.dorsal,
        estado: row.estado, penalizacion_ms: row.penalizacion_ms, juez_id: null,
        categoria: null, registros: 0 };
    });
    (state.board ? state.board.jueces : []).forEach(function (j) {
      j.equipos.forEach(function (e) {
        var team = byId[e.id] || (byId[e.id] = { id: e.id, nombre: e.nombre, dorsal: e.dorsal,
          estado: 'ok', penalizacion_ms: 0 });
        team.juez_id = j.id;
        team.categoria = e.categoria;
        team.registros = e.registros;
      });
    });
    return Object.keys(byId).map(function (k) { return byId[k]; })
      .sort(function (a, b) { return a.dorsal - b.dorsal; });
  }

  function teamName(team) { return team ? team.nombre + ' (dorsal ' + team.dorsal + ')' : '?'; }

  function teamOptions(skip) {
    return teams().filter(function (t) { return t.id !== skip; })
      .map(function (t) { return [t.id, teamName(t)]; });
  }

  function judgeOptions(first) {
    var options = first ? [first] : [];
    return options.concat((state.board ? state.board.jueces : []).map(function (j) {
      return [j.id, j.nombre + ' (' + j.username + ')'];
    }));
  }

  // -- rendering ------------------------------------------------------------------------------------
  function render() {
    if (!state || !state.comp) { return; }
    var comp = state.comp;
    $('comp-nombre').textContent = comp.nombre;
    document.title = comp.nombre + ' · Consola del organizador';
    var estado = $('comp-estado');
    estado.textContent = ESTADOS[comp.estado] || comp.estado;
    estado.className = 'estado estado-' + comp.estado;
    $('comp-oficial').textContent = comp.oficial ? 'Resultados oficiales' : 'Resultados provisionales';
    $('comp-oficial').className = 'oficial' + (comp.oficial ? ' es-oficial' : '');
    $('comp-oculta').hidden = !comp.oculta;
    $('ocultar').textContent = comp.oculta ? 'Mostrar en el índice público' : 'Ocultar del índice público';
    tick();
    PANELS[state.tab].render();
  }

  function tick() {
    var reloj = $('reloj');
    if (!reloj || !state || !state.comp) { return; }
    var comp = state.comp;
    reloj.hidden = !comp.started_at;
    if (comp.started_at) {
      var end = comp.finished_at ? Date.parse(comp.finished_at) : Date.now() + state.offset;
      reloj.textContent = clockText(end - Date.parse(comp.started_at));
    }
  }
  setInterval(tick, 250);

  function mountPanel() {
    var panel = PANELS[state.tab] ? state.tab : 'carrera';
    state.tab = panel;
    mount($('panel'), 't-' + panel);
    PANELS[panel].mount();
    if (state.comp) { PANELS[panel].render(); }
  }

  function act(button, work) {
    button.addEventListener('click', once(button, work));
  }

  // After a change: say so and read again at once (the socket will say so too).
  function done(message) {
    return function () { showHecho(message); load(); };
  }

  var base = function (path) { return '/api/competencias/' + state.cid + '/' + (path || ''); };

  // -- the competition itself: its name and whether the public index lists it ---------------------------
  function patchCompetition(body) {
    return api('PATCH', base(), { body: body });
  }

  function renameCompetition() {
    return ask({ titulo: 'Cambiar el nombre de la competencia',
      texto: 'El nuevo nombre se ve al momento en la página pública y en los móviles de los jueces.',
      campos: [{ name: 'nombre', label: 'Nombre', value: state.comp.nombre, required: true, maxLength: 200 },
        { name: 'motivo', label: 'Motivo (opcional)', maxLength: 500 }],
      aceptar: 'Guardar nombre',
      accion: function (v) {
        var body = { nombre: v.nombre };
        if (v.motivo) { body.motivo = v.motivo; }
        return patchCompetition(body);
      } }).then(function (ok) { if (ok) { done('Nombre cambiado')(); } });
  }

  function toggleListing() {
    var hide = !state.comp.oculta;
    return ask({ titulo: hide ? 'Ocultar del índice público' : 'Mostrar en el índice público',
      texto: hide ? 'La competencia deja de aparecer en la lista de la página principal (para una carrera de prueba). Su página de resultados sigue abierta para quien tenga la dirección, y los jueces no notan nada.' :
        'La competencia vuelve a aparecer en la lista de la página principal.',
      aceptar: hide ? 'Sí, ocultar' : 'Sí, mostrar',
      accion: function () { return patchCompetition({ oculta: hide }); } })
      .then(function (ok) { if (ok) { done(hide ? 'Oculta del índice público' : 'Visible en el índice público')(); } });
  }

  // -- race control ---------------------------------------------------------------------------------
  var carrera = {
    mount: function () {
      act($('iniciar'), function () {
        var board = state.board;
        var total = board.jueces.length;
        return ask({ titulo: 'Iniciar la carrera',
          texto: ['Hay ' + board.conectados + ' de ' + total + ' jueces conectados.',
            board.conectados < total ? 'Los que se conecten después reciben la salida al conectarse.' :
              'Todos oirán la salida ahora.'],
          aceptar: 'Sí, iniciar',
          accion: function () { return api('POST', base('iniciar/')); } })
          .then(function (ok) { if (ok) { done('Carrera iniciada')(); } });
      });
      act($('detener'), function () {
        return ask({ titulo: 'Detener la carrera',
          texto: 'Los tiempos que lleguen después se guardan igualmente.', aceptar: 'Sí, detener',
          accion: function () { return api('POST', base('detener/')); } })
          .then(function (ok) { if (ok) { done('Carrera detenida')(); } });
      });
      act($('salida-falsa'), function () {
        var forced = false;
        return ask({ titulo: 'Salida en falso',
          texto: 'La carrera vuelve a estar programada y los móviles de los jueces lo oyen.',
          aceptar: 'Sí, salida en falso',
          accion: function () {
            return api('POST', base('reiniciar/')).catch(function (err) {
              if (err.code !== 'records_since_start') { throw err; }
              forced = err.message;
            });
          } }).then(function (ok) {
          if (!ok) { return; }
          if (!forced) { return done('Salida anulada: la carrera está programada')(); }
          return ask({ titulo: 'Ya llegaron tiempos',
            texto: [forced, 'Se conservan todos, marcados como llegados antes de la salida.'],
            aceptar: 'Forzar la salida en falso',
            accion: function () { return api('POST', base('reiniciar/'), { body: { force: true } }); } })
            .then(function (again) { if (again) { done('Salida anulada (forzada)')(); } });
        });
      });
      act($('ajustar'), function () {
        return ask({ titulo: 'Ajustar la salida',
          texto: 'Suma el ajuste a cada tiempo enviado por los móviles; sin juez, la salida se mueve también (la salida se dio tarde o temprano). Con un juez, solo sus tiempos (su móvil oyó la salida tarde). Los tiempos en papel no se ajustan nunca: se anotan como el tiempo real desde la salida real.',
          campos: [{ name: 'delta', label: 'Ajuste (p. ej. +20s o -1.5s)', required: true },
            { name: 'juez_id', label: 'Solo los tiempos de', options: judgeOptions(['', 'todos los jueces']) },
            MOTIVO],
          aceptar: 'Ajustar tiempos',
          accion: function (v) {
            var body = { delta_ms: parseDuracion(v.delta), motivo: v.motivo };
            if (v.juez_id) { body.juez_id = Number(v.juez_id); }
            return api('POST', base('ajustar_tiempos/'), { body: body }).then(function (answer) {
              showHecho('Ajustados ' + answer.registros_afectados + ' tiempos');
            });
          } }).then(function (ok) { if (ok) { load(); } });
      });
    },
    render: function () {
      var comp = state.comp;
      var board = state.board;
      $('iniciar').hidden = comp.estado !== 'programada';
      $('detener').hidden = comp.estado !== 'en_curso';
      $('salida-falsa').hidden = comp.estado === 'programada';
      $('ajustar').hidden = !comp.started_at;
      $('conectados').textContent = board.conectados + ' de ' + board.jueces.length + ' conectados';
      var late = board.registros_tras_final;
      $('tras-final').hidden = !late;
      $('tras-final').textContent = late + ' tiempos llegaron después del final.';
      var copia = board.replica;  // the live copy off the laptop (replica.url), when there is one
      $('copia').hidden = !copia;
      if (copia) {
        $('copia').className = 'nota' + (copia.running && copia.lag_s !== null && copia.lag_s < 10 ? '' : ' marca-roja');
        $('copia').textContent = 'Copia en vivo (' + copia.url + '): ' +
          (copia.running ? 'activa' : 'DETENIDA') +
          (copia.lag_s === null || copia.lag_s === undefined ? '' : ', ' + copia.lag_s.toFixed(1) + ' s de retraso') +
          (copia.last_error ? ' · último error: ' + copia.last_error : '');
      }
      var direcciones = board.direcciones || [];  // where the judges' phones reach the server
      $('direcciones').className = 'nota' + (direcciones.length ? '' : ' marca-roja');
      $('direcciones').textContent = direcciones.length ?
        'Dirección para los móviles de los jueces: ' + direcciones.join(' · ') :
        'Solo este ordenador llega al servidor: los móviles no podrán conectarse (ponga server.host: 0.0.0.0 y conecte el portátil a la red del evento).';
      fill($('tablero'), board.jueces.map(judgeCard));
      if (!board.jueces.length) {
        fill($('tablero'), [el('li', { className: 'sub' }, 'Sin jueces todavía: impórtelos en «Equipos y jueces».')]);
      }
    }
  };

  function judgeCard(j) {
    var started = !!state.comp.started_at;
    var lines = [];
    if (!j.activo) { lines.push(el('p', { className: 'marca-roja' }, 'Desactivado')); }
    lines.push(el('p', { className: 'sub' }, j.conectado ?
      j.sockets + (j.sockets === 1 ? ' conexión' : ' conexiones') + ' · última a las ' + localTime(j.ultima_conexion) :
      (j.ultima_conexion ? 'Última conexión a las ' + localTime(j.ultima_conexion) : 'Nunca se conectó')));
    if (started) {
      lines.push(el('p', { className: 'sub' },
        j.retraso_inicio_ms === null ? 'No ha oído la salida' :
          'Oyó la salida ' + signedSeconds(j.retraso_inicio_ms),
        j.inicio_implicito_ms === null ? '' : ' · su cronómetro: ' + signedSeconds(j.inicio_implicito_ms)));
    }
    if (j.alerta) {
      lines.push(el('p', { className: 'marca-roja' },
        '⚠ Revise este juez: su salida va con retraso (Ajustar la salida, solo sus tiempos).'));
    }
    var equipos = el('ul', { className: 'equipos-juez' });
    j.equipos.forEach(function (e) {
      equipos.appendChild(el('li', {}, 'Dorsal ' + e.dorsal + ' · ' + e.nombre + ': ',
        el('strong', {}, e.registros + (e.registros === 1 ? ' tiempo' : ' tiempos'))));
    });
    return el('li', { className: 'tarjeta juez ' + (j.conectado ? 'conectado' : 'desconectado') +
      (j.alerta ? ' alerta' : ''), dataset: { juezId: j.id } },
      el('div', { className: 'fila' }, el('strong', { className: 'nombre' }, j.nombre),
        el('span', { className: 'sub' }, j.username),
        el('span', { className: 'pildora' }, j.conectado ? 'Conectado' : 'Sin conexión')),
      lines, equipos);
  }

  // -- records ----------------------------------------------------------------------------------------
  var registrosPanel = {
    mount: function () {
      act($('anadir-tiempo'), function () {
        return ask({ titulo: 'Añadir un tiempo en papel',
          campos: [{ name: 'equipo_id', label: 'Equipo', options: teamOptions() },
            { name: 'tiempo', label: 'Tiempo (p. ej. 19:45.2)', required: true }, MOTIVO],
          aceptar: 'Guardar tiempo',
          accion: function (v) {
            return api('POST', base('registros/'), { body: { equipo_id: Number(v.equipo_id),
              tiempo: parseTiempo(v.tiempo), motivo: v.motivo } });
          } }).then(function (ok) { if (ok) { done('Tiempo añadido')(); } });
      });
      act($('descargar-registros'), function () {
        return download(base('registros/?format=csv'), 'registros-competencia-' + state.cid + '.csv');
      });
      act($('excel-registros'), function () {  // ';' and decimal comma: Excel in Spanish
        return download(base('registros/?format=csv&excel=1'), 'registros-competencia-' + state.cid + '-excel.csv');
      });
      ['filtro-equipo', 'filtro-juez'].forEach(function (id) {
        $(id).addEventListener('change', function () {
          state.filtroEquipo = $('filtro-equipo').value;
          state.filtroJuez = $('filtro-juez').value;
          state.limite = 200;
          registrosPanel.render();
        });
      });
      $('mas-registros').addEventListener('click', function () {
        state.limite += 200;
        registrosPanel.render();
      });
    },
    render: function () {
      options($('filtro-equipo'), [['', 'todos']].concat(teamOptions()), state.filtroEquipo);
      options($('filtro-juez'), judgeOptions(['', 'todos']).concat([['papel', 'en papel']]),
        state.filtroJuez);
      var shown = state.records.filter(function (r) {
        return (!state.filtroEquipo || String(r.equipo_id) === state.filtroEquipo) &&
          (!state.filtroJuez || (state.filtroJuez === 'papel' ? r.juez_id === null :
            String(r.juez_id) === state.filtroJuez));
      }).reverse();  // newest first
      $('cuenta-registros').textContent = shown.length + (shown.length === 1 ? ' registro' : ' registros') +
        (shown.length > state.limite ? ' (se muestran los ' + state.limite + ' más recientes)' : '');
      var byTeam = {};
      teams().forEach(function (t) { byTeam[t.id] = t; });
      var judges = judgesById();
      fill($('registros'), shown.slice(0, state.limite).map(function (r) {
        return recordCard(r, byTeam, judges);
      }));
      $('mas-registros').hidden = shown.length <= state.limite;
    }
  };

  function options(select, list, value) {
    fill(select, list.map(function (o) { return el('option', { value: String(o[0]) }, o[1]); }));
    select.value = value;
    if (select.value !== value) { select.value = ''; }
  }

  var FLAGS = [['anulado', 'anulado'], ['ausente', 'ausente'], ['pendiente', 'pendiente'],
    ['antes_de_salida', 'antes de la salida'], ['tiempo_imposible', 'tiempo imposible']];

  function recordCard(r, byTeam, judges) {
    var judge = judges[r.juez_id];
    var marks = el('p', { className: 'marcas' });
    FLAGS.forEach(function (flag) {
      if (r[flag[0]]) { marks.appendChild(el('span', { className: 'marca ' + flag[0] }, flag[1])); }
    });
    if (r.origen === 'manual') { marks.appendChild(el('span', { className: 'marca papel' }, 'en papel')); }
    // Which judges' app protocol sent it: the guide's, or Movil5K's (docs/movil5k.md)
    if (r.protocolo) {
      marks.appendChild(el('span', { className: 'marca protocolo', title: 'Protocolo que lo envió' },
        r.protocolo === 'movil5k' ? 'Movil5K' : 'app (guía)'));
    }
    if (r.revision === 'segundo_envio') {
      marks.appendChild(el('span', { className: 'marca pendiente' }, 'segundo envío: revisar'));
    }
    marks.appendChild(el('span', { className: 'marca ' + (r.cuenta ? 'cuenta' : 'no-cuenta') },
      r.cuenta ? 'cuenta' : 'no cuenta'));
    var buttons = el('div', { className: 'botones' });
    function button(label, handler) {
      var b = el('button', { type: 'button', className: 'boton pequeno' }, label);
      act(b, function () { return handler(r); });
      buttons.appendChild(b);
    }
    button(r.anulado ? 'Restaurar' : 'Anular', r.anulado ? restoreRecord : voidRecord);
    button('Mover', moveRecord);
    button('Corregir', fixRecord);
    if (r.pendiente) { button('Aceptar', acceptRecord); }
    button('Historial', recordHistory);
    return el('li', { className: 'tarjeta registro' + (r.anulado ? ' anulado' : '') +
      (r.cuenta ? '' : ' no-cuenta'), dataset: { registro: r.id } },
      el('p', { className: 'fila' },
        el('strong', { className: 'tiempo' }, r.ausente ? 'ausente' : formatMs(r.tiempo)),
        el('span', { className: 'equipo' }, teamName(byTeam[r.equipo_id]))),
      el('p', { className: 'sub' },
        (r.juez_id === null ? 'En papel' : 'Juez ' + (judge ? judge.nombre : r.juez_id)) +
        ' · llegó a las ' + localTime(r.recibido_en) +
        (r.tiempo !== r.tiempo_recibido ? ' · recibido ' + formatMs(r.tiempo_recibido) : '')),
      marks, buttons);
  }

  function describeRecord(r) {
    var team = teams().filter(function (t) { return t.id === r.equipo_id; })[0];
    return (r.ausente ? 'Ausente' : formatMs(r.tiempo)) + ' · ' + teamName(team);
  }

  function recordAction(r, path, titulo, aceptar, hecho) {
    return ask({ titulo: titulo, texto: describeRecord(r), campos: [MOTIVO], aceptar: aceptar,
      accion: function (v) { return api('POST', '/api/registros/' + r.id + '/' + path + '/',
        { body: { motivo: v.motivo } }); } })
      .then(function (ok) { if (ok) { done(hecho)(); } });
  }

  function voidRecord(r) { return recordAction(r, 'anular', 'Anular el registro', 'Anular', 'Registro anulado'); }
  function restoreRecord(r) { return recordAction(r, 'restaurar', 'Restaurar el registro', 'Restaurar', 'Registro restaurado'); }
  function acceptRecord(r) { return recordAction(r, 'aceptar', 'Aceptar el registro pendiente', 'Aceptar', 'Registro aceptado'); }

  function editRecord(r, titulo, campo, aceptar, body, hecho) {
    return ask({ titulo: titulo, texto: describeRecord(r), campos: [campo, MOTIVO], aceptar: aceptar,
      accion: function (v) {
        return api('PATCH', '/api/registros/' + r.id + '/', { body: body(v) });
      } }).then(function (ok) { if (ok) { done(hecho)(); } });
  }

  function moveRecord(r) {
    return editRecord(r, 'Mover el registro a otro equipo',
      { name: 'equipo_id', label: 'Al equipo', options: teamOptions(r.equipo_id) }, 'Mover',
      function (v) { return { equipo_id: Number(v.equipo_id), motivo: v.motivo }; }, 'Registro movido');
  }

  function fixRecord(r) {
    return editRecord(r, 'Corregir el tiempo',
      { name: 'tiempo', label: 'Tiempo que cuenta', value: formatMs(r.tiempo), required: true },
      'Corregir', function (v) { return { tiempo: parseTiempo(v.tiempo), motivo: v.motivo }; },
      'Tiempo corregido');
  }

  function recordHistory(r) {
    return api('GET', '/api/registros/' + r.id + '/historial/').then(function (answer) {
      return ask({ titulo: 'Historial del registro', soloCerrar: true, aceptar: 'Cerrar',
        texto: [describeRecord(answer.registro), answer.historial.length ?
          el('ul', { className: 'lista compacta historial' }, answer.historial.map(historyLine)) :
          'Sin cambios: está como llegó.'] });
    });
  }

  function change(value) {
    if (value === null || value === undefined) { return ''; }
    return Object.keys(value).map(function (k) { return k + ' ' + JSON.stringify(value[k]); }).join(', ');
  }

  function historyLine(h) {
    return el('li', {}, el('strong', {}, ACCIONES[h.accion] || h.accion), ' · ',
      localDateTime(h.en), ' · ', h.usuario || 'sistema',
      h.motivo ? ' · «' + h.motivo + '»' : '',
      h.antes || h.despues ? el('span', { className: 'sub cambio' },
        change(h.antes) + (h.antes && h.despues ? ' → ' : '') + change(h.despues)) : null);
  }

  // -- teams and judges -------------------------------------------------------------------------------
  var plantilla = {
    mount: function () {
      var form = $('form-importar');
      form.addEventListener('submit', once(form.querySelector('button[type=submit]'), function () {
        formError(form, '');
        $('vista-previa').hidden = true;
        var file = form.archivo.files[0];
        if (!file) { formError(form, 'Elija el archivo CSV de la lista.'); return null; }
        // The file's bytes as they are: the server's one decoder decides the encoding (UTF-8
        // or Spanish Excel's Windows-1252) and the separator, as for the command line.
        return file.arrayBuffer().then(function (bytes) {
          state.csv = bytes;
          return api('POST', base('importar/?dry_run=1'), { raw: bytes, contentType: 'text/csv' });
        }).then(showPreview, function (err) { formError(form, err.message); });
      }));
      act($('importar'), function () {
        var preview = state.preview;
        return ask({ titulo: 'Importar la lista',
          texto: 'Se crearán ' + preview.jueces_nuevos + ' jueces y ' + preview.equipos_nuevos +
            ' equipos' + changedText(preview) + '. Las contraseñas nuevas se muestran una sola vez.',
          aceptar: 'Sí, importar',
          accion: function () {
            return api('POST', base('importar/'), { raw: state.csv, contentType: 'text/csv' })
              .then(function (answer) { state.imported = answer; });
          } }).then(function (ok) {
          if (!ok) { return; }
          $('vista-previa').hidden = true;
          form.reset();
          showCredentials(state.imported.credenciales);
          done('Lista importada: ' + state.imported.jueces_nuevos + ' jueces y ' +
            state.imported.equipos_nuevos + ' equipos nuevos' + changedText(state.imported))();
        });
      });
      function credentialsCsv(separator, suffix) {
        var rows = [['usuario', 'nombre', 'contrasena']].concat(state.credentials.map(function (c) {
          return [c.username, c.nombre, c.password];
        }));
        saveFile(new Blob(['\ufeff' + rows.map(function (row) { return csvRow(row, separator); })
          .join('\r\n') + '\r\n'], { type: 'text/csv' }),
          'contrasenas-competencia-' + state.cid + suffix + '.csv');
      }
      act($('descargar-credenciales'), function () { credentialsCsv(',', ''); });
      act($('excel-credenciales'), function () { credentialsCsv(';', '-excel'); });
      $('ocultar-credenciales').addEventListener('click', function () {
        state.credentials = [];
        $('credenciales').hidden = true;
        $('credenciales-filas').textContent = '';
      });
      act($('anadir-juez'), addJudge);
      act($('anadir-equipo'), addTeam);
      if (state.credentials && state.credentials.length) { showCredentials([]); }
    },
    render: function () {
      fill($('jueces'), state.board.jueces.map(judgeRow));
      var judges = judgesById();
      fill($('equipos'), teams().map(function (t) { return teamRow(t, judges); }));
    }
  };

  // One CSV row; separator ',' (programs) or ';' (Excel where the decimal mark is a comma).
  function csvRow(cells, separator) {
    return cells.map(function (cell) {
      var text = String(cell === null || cell === undefined ? '' : cell);
      if (/^[=+\-@\t\r]/.test(text)) { text = "'" + text; }  // never a spreadsheet formula
      return /[",;\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    }).join(separator);
  }

  // A re-imported roster corrects the teams already there (their dorsal): say how many, and
  // on each line what changes (detalle.equipos[].cambios: {campo: [antes, después]}).
  function changedText(answer) {
    return answer.equipos_cambiados ? '; se corregirán ' + answer.equipos_cambiados +
      ' equipos que ya estaban' : '';
  }

  function changesText(t) {
    return Object.keys(t.cambios || {}).map(function (field) {
      var pair = t.cambios[field];
      return ' · ' + field.replace('juez_usuario', 'juez') + ': ' + (pair[0] === null ? '—' : pair[0]) +
        ' → ' + (pair[1] === null ? '—' : pair[1]);
    }).join('');
  }

  function showPreview(preview) {
    state.preview = preview;
    $('previa-resumen').textContent = 'Se crearán ' + preview.jueces_nuevos + ' jueces y ' +
      preview.equipos_nuevos + ' equipos' + (preview.equipos_nuevos < preview.detalle.equipos.length ?
      ' (' + (preview.detalle.equipos.length - preview.equipos_nuevos) + ' ya estaban)' : '') +
      changedText(preview) + '.';
    fill($('previa-lineas'), preview.notas.map(function (n) { return el('li', { className: 'nota' }, n); })
      .concat(preview.detalle.equipos.map(function (t) {
        return el('li', { className: t.nuevo ? 'nuevo' : 'existente' },
          'Línea ' + t.linea + ': ', el('strong', {}, t.nombre), ' · dorsal ' + t.dorsal +
          ' · juez ' + t.juez_usuario + (t.categoria ? ' · ' + t.categoria : '') +
          (t.nuevo ? '' : t.cambios ? changesText(t) : ' · ya estaba'));
      })));
    $('importar').disabled = !(preview.jueces_nuevos || preview.equipos_nuevos ||
      preview.equipos_cambiados);
    $('vista-previa').hidden = false;
  }

  function showCredentials(added) {
    state.credentials = (state.credentials || []).concat(added);
    fill($('credenciales-filas'), state.credentials.map(function (c) {
      return el('tr', {}, el('td', {}, c.username), el('td', {}, c.nombre),
        el('td', {}, el('code', {}, c.password)));
    }));
    $('credenciales').hidden = !state.credentials.length;
  }

  function addJudge() {
    return ask({ titulo: 'Añadir un juez',
      campos: [{ name: 'username', label: 'Usuario del juez', required: true, maxLength: 150 },
        { name: 'nombre', label: 'Nombre', maxLength: 200 },
        { name: 'password', label: 'Clave (vacía: se genera una)' }],
      aceptar: 'Añadir juez',
      accion: function (v) {
        var body = { username: v.username, nombre: v.nombre || null };
        if (v.password) { body.password = v.password; }
        return api('POST', base('jueces/'), { body: body }).then(function (answer) {
          if (answer.password) {
            showCredentials([{ username: answer.juez.username, nombre: answer.juez.nombre,
              password: answer.password }]);
          }
        });
      } }).then(function (ok) { if (ok) { done('Juez añadido')(); } });
  }

  function addTeam() {
    return ask({ titulo: 'Añadir un equipo',
      campos: [{ name: 'nombre', label: 'Nombre del equipo', required: true, maxLength: 200 },
        { name: 'dorsal', label: 'Dorsal', type: 'number', required: true },
        { name: 'juez_id', label: 'Juez', options: judgeOptions() },
        { name: 'categoria', label: 'Categoría (opcional)', maxLength: 100 }],
      aceptar: 'Añadir equipo',
      accion: function (v) {
        return api('POST', base('equipos/'), { body: { nombre: v.nombre, dorsal: Number(v.dorsal),
          juez_id: Number(v.juez_id), categoria: v.categoria || null } });
      } }).then(function (ok) { if (ok) { done('Equipo añadido')(); } });
  }

  function rowButtons(pairs) {
    var box = el('div', { className: 'botones' });
    pairs.forEach(function (pair) {
      var b = el('button', { type: 'button', className: 'boton pequeno' }, pair[0]);
      act(b, pair[1]);
      box.appendChild(b);
    });
    return box;
  }

  function judgeRow(j) {
    return el('li', { className: 'tarjeta' + (j.activo ? '' : ' inactivo'), dataset: { juezId: j.id } },
      el('p', { className: 'fila' }, el('strong', { className: 'nombre' }, j.nombre),
        el('span', { className: 'sub' }, j.username),
        el('span', { className: 'pildora' }, j.activo ? (j.conectado ? 'Conectado' : 'Activo') : 'Desactivado')),
      el('p', { className: 'sub' }, j.equipos.length ? j.equipos.map(function (e) {
        return e.nombre + ' (' + e.dorsal + ')';
      }).join(', ') : 'Sin equipos'),
      rowButtons([['Editar', function () { return editJudge(j); }],
        [j.activo ? 'Desactivar' : 'Activar', function () { return setJudgeActive(j, !j.activo); }],
        ['Enlace y QR', function () { return showJudgeLink(j); }]]));
  }

  // The judge app's link for one judge, with its QR code (drawn by the server): it fills in the
  // username, never the password, which the organizer hands over apart.
  function showJudgeLink(j) {
    return api('GET', '/api/jueces/' + j.id + '/enlace/').then(function (link) {
      return ask({ titulo: 'App del juez: ' + (j.nombre || j.username), soloCerrar: true, aceptar: 'Cerrar',
        texto: [el('img', { className: 'qr', src: link.qr, width: 220, height: 220,
          alt: 'Código QR del enlace de ' + j.username }),
          el('p', {}, el('a', { href: link.url, target: '_blank', rel: 'noopener', className: 'enlace-juez' }, link.url)),
          'El enlace abre la app con el usuario «' + j.username + '» escrito; la contraseña se entrega aparte.',
          link.aviso ? el('p', { className: 'nota' }, link.aviso) : null].filter(Boolean) });
    });
  }

  function judgePatch(j, body, hecho) {
    return api('PATCH', '/api/jueces/' + j.id + '/', { body: body }).then(function () { showHecho(hecho); });
  }

  function editJudge(j) {
    return ask({ titulo: 'Editar el juez ' + j.username,
      campos: [{ name: 'nombre', label: 'Nombre', value: j.nombre, required: true, maxLength: 200 },
        { name: 'password', label: 'Clave nueva (vacía: no cambia)' }],
      texto: 'Una clave nueva cierra la sesión del juez en todos sus móviles.',
      aceptar: 'Guardar',
      accion: function (v) {
        var body = { nombre: v.nombre };
        if (v.password) { body.password = v.password; }
        return judgePatch(j, body, 'Juez guardado');
      } }).then(function (ok) { if (ok) { load(); } });
  }

  function setJudgeActive(j, activo) {
    return ask({ titulo: (activo ? 'Activar' : 'Desactivar') + ' el juez ' + j.username,
      texto: activo ? 'Podrá volver a entrar y enviar tiempos.' :
        'Su sesión se cierra en todos sus móviles al momento y no podrá enviar tiempos ni oír la salida (un móvil perdido queda fuera).',
      aceptar: activo ? 'Sí, activar' : 'Sí, desactivar',
      accion: function () {
        return judgePatch(j, { activo: activo }, activo ? 'Juez activado' : 'Juez desactivado');
      } }).then(function (ok) { if (ok) { load(); } });
  }

  function teamRow(t, judges) {
    var judge = judges[t.juez_id];
    return el('li', { className: 'tarjeta', dataset: { equipoId: t.id } },
      el('p', { className: 'fila' }, el('strong', { className: 'nombre' }, t.nombre),
        el('span', { className: 'sub' }, 'dorsal ' + t.dorsal),
        t.estado !== 'ok' ? el('span', { className: 'pildora marca-roja' }, t.estado.toUpperCase()) : null),
      el('p', { className: 'sub' }, 'Juez ' + (judge ? judge.nombre : '—') +
        (t.categoria ? ' · ' + t.categoria : '') + ' · ' + t.registros + ' tiempos' +
        (t.penalizacion_ms ? ' · penalización ' + signedSeconds(t.penalizacion_ms) : '')),
      rowButtons([['Editar', function () { return editTeam(t); }],
        ['Estado', function () { return teamStatus(t); }],
        ['Penalización', function () { return teamPenalty(t); }],
        ['Eliminar', function () { return deleteTeam(t); }]]));
  }

  function editTeam(t) {
    return ask({ titulo: 'Editar el equipo ' + t.nombre,
      texto: 'Si cambia el juez, el equipo pasa al nuevo al momento; los tiempos ya recibidos conservan su juez.',
      campos: [{ name: 'nombre', label: 'Nombre del equipo', value: t.nombre, required: true, maxLength: 200 },
        { name: 'dorsal', label: 'Dorsal', type: 'number', value: t.dorsal, required: true },
        { name: 'juez_id', label: 'Juez', options: judgeOptions(), value: t.juez_id },
        { name: 'categoria', label: 'Categoría (opcional)', value: t.categoria, maxLength: 100 }],
      aceptar: 'Guardar',
      accion: function (v) {
        return api('PATCH', '/api/equipos/' + t.id + '/', { body: { nombre: v.nombre,
          dorsal: Number(v.dorsal), juez_id: Number(v.juez_id), categoria: v.categoria || null } });
      } }).then(function (ok) { if (ok) { done('Equipo guardado')(); } });
  }

  function teamStatus(t) {
    return ask({ titulo: 'Estado del equipo ' + t.nombre,
      campos: [{ name: 'estado', label: 'Estado', value: t.estado,
        options: Object.keys(ESTADOS_EQUIPO).map(function (k) { return [k, ESTADOS_EQUIPO[k]]; }) }, MOTIVO],
      aceptar: 'Guardar estado',
      accion: function (v) {
        return api('POST', '/api/equipos/' + t.id + '/estado/', { body: { estado: v.estado, motivo: v.motivo } });
      } }).then(function (ok) { if (ok) { done('Estado guardado')(); } });
  }

  function teamPenalty(t) {
    return ask({ titulo: 'Penalización del equipo ' + t.nombre,
      campos: [{ name: 'ms', label: 'Penalización (p. ej. +2:00 o 30s; 0 la quita)', required: true,
        value: t.penalizacion_ms ? signedSeconds(t.penalizacion_ms).replace(' ', '').replace('−', '-') : '' },
        MOTIVO],
      aceptar: 'Guardar penalización',
      accion: function (v) {
        return api('POST', '/api/equipos/' + t.id + '/penalizacion/', { body: { ms: parseDuracion(v.ms),
          motivo: v.motivo } });
      } }).then(function (ok) { if (ok) { done('Penalización guardada')(); } });
  }

  function deleteTeam(t) {
    return ask({ titulo: 'Eliminar el equipo ' + t.nombre,
      texto: 'Solo un equipo que nunca tuvo tiempos (un equipo de prueba o un error). Si no corre, márquelo DNS.',
      aceptar: 'Sí, eliminar',
      accion: function () { return api('DELETE', '/api/equipos/' + t.id + '/'); } })
      .then(function (ok) { if (ok) { done('Equipo eliminado')(); } });
  }

  // -- results ----------------------------------------------------------------------------------------
  var resultados = {
    mount: function () {
      act($('cambiar-regla'), changeRule);
      $('ver-publica').href = '/competencias/' + state.cid + '/';
      act($('csv-auditoria'), function () {
        return download(base('auditoria/?format=csv'), 'auditoria-competencia-' + state.cid + '.csv');
      });
      act($('excel-auditoria'), function () {
        return download(base('auditoria/?format=csv&excel=1'), 'auditoria-competencia-' + state.cid + '-excel.csv');
      });
      act($('oficializar'), function () {
        return ask({ titulo: 'Oficializar resultados',
          texto: 'La clasificación queda fija para los premios. Los tiempos que lleguen después se guardan pendientes hasta que los acepte.',
          campos: [{ name: 'motivo', label: 'Motivo (opcional)', maxLength: 500 }],
          aceptar: 'Sí, oficializar',
          accion: function (v) {
            return api('POST', base('oficializar/'), { body: v.motivo ? { motivo: v.motivo } : {} });
          } }).then(function (ok) { if (ok) { done('Resultados oficiales')(); } });
      });
      act($('reabrir'), function () {
        return ask({ titulo: 'Reabrir resultados', texto: 'Vuelven a ser provisionales.',
          campos: [MOTIVO], aceptar: 'Reabrir',
          accion: function (v) { return api('POST', base('reabrir/'), { body: { motivo: v.motivo } }); } })
          .then(function (ok) { if (ok) { done('Resultados reabiertos')(); } });
      });
    },
    render: function () {
      var comp = state.comp;
      var results = state.results;
      $('oficializar').hidden = comp.oficial || comp.estado !== 'finalizada';
      $('reabrir').hidden = !comp.oficial;
      $('regla-texto').textContent = results.regla ? results.regla.texto : '';
      $('cambiar-regla').disabled = comp.oficial;
      $('cambiar-regla').title = comp.oficial ? 'Reabra los resultados para cambiar la regla' : '';
      // One tab per category, as on the public page (General: every team).
      var names = results.categorias || [];
      if (state.categoria !== null && names.indexOf(state.categoria) < 0) { state.categoria = null; }
      $('categorias-resultados').hidden = !names.length;
      fill($('categorias-resultados'), [null].concat(names).map(function (name) {
        var tab = el('button', { type: 'button' }, name === null ? 'General' : name);
        tab.setAttribute('role', 'tab');
        tab.setAttribute('aria-selected', String(name === state.categoria));
        tab.setAttribute('aria-controls', 'clasificacion');
        tab.addEventListener('click', function () {
          state.categoria = name;
          resultados.render();
        });
        return tab;
      }));
      var filtro = state.categoria === null ? '' : '&categoria=' + encodeURIComponent(state.categoria);
      $('csv-resultados').href = base('resultados/?format=csv' + filtro);
      $('excel-resultados').href = base('resultados/?format=csv&excel=1' + filtro);
      var rows = results.clasificacion.filter(function (r) {
        return state.categoria === null || r.categoria === state.categoria;
      });
      fill($('clasificacion').querySelector('tbody'), rows.map(function (r) {
        var pos = state.categoria === null ? r.posicion : r.posicion_categoria;
        return el('tr', { dataset: { equipoId: r.equipo_id } },
          el('td', { className: 'pos' }, r.estado !== 'ok' ? r.estado.toUpperCase() :
            (pos === null ? '–' : pos)),
          el('td', {}, el('strong', {}, r.equipo), el('span', { className: 'sub' }, ' · dorsal ' + r.dorsal +
            (r.categoria && state.categoria === null ? ' · ' + r.categoria : ''))),
          el('td', {}, r.registros_contados), el('td', { className: 'tiempo' }, r.tiempo_total || '—'));
      }));
      if (state.audit) {
        fill($('auditoria'), state.audit.slice().reverse().map(function (a) {
          return el('li', {}, el('strong', {}, ACCIONES[a.accion] || a.accion), ' · ' + a.objeto +
            ' ' + a.objeto_id + ' · ' + localDateTime(a.en) + ' · ' + (a.usuario || 'sistema') +
            (a.motivo ? ' · «' + a.motivo + '»' : ''),
          a.antes || a.despues ? el('span', { className: 'sub cambio' },
            change(a.antes) + (a.antes && a.despues ? ' → ' : '') + change(a.despues)) : null);
        }));
      }
    }
  };

  function changeRule() {
    var regla = state.results.regla;
    return ask({ titulo: 'Regla de puntuación',
      texto: ['Ahora: ' + regla.texto, 'La clasificación se recalcula al momento, también en la página pública; el cambio queda en el historial.'],
      campos: [{ name: 'tipo', label: 'Regla', value: regla.tipo, options: REGLAS },
        { name: 'contados', label: 'Tiempos que cuentan por equipo', type: 'number', value: regla.contados, required: true },
        { name: 'minimo', label: 'Llegadas mínimas para clasificar', type: 'number', value: regla.minimo, required: true },
        { name: 'motivo', label: 'Motivo (opcional)', maxLength: 500 }],
      aceptar: 'Guardar regla',
      accion: function (v) {
        var contados = Number(v.contados);
        var minimo = Number(v.minimo);
        if (!/^[0-9]+$/.test(v.contados.trim()) || contados < 1 || !/^[0-9]+$/.test(v.minimo.trim()) || minimo < 1) {
          throw new Error('Los tiempos que cuentan y las llegadas mínimas son números enteros desde 1.');
        }
        var body = { regla: { tipo: v.tipo, contados: contados, minimo: minimo } };
        if (v.motivo) { body.motivo = v.motivo; }
        return patchCompetition(body);
      } }).then(function (ok) { if (ok) { done('Regla guardada')(); } });
  }

  var PANELS = { carrera: carrera, registros: registrosPanel, plantilla: plantilla,
    resultados: resultados };

  // -- start: resume the session if this tab has one ---------------------------------------------------
  function resume() {
    if (!session.refresh) { return showLogin(''); }
    refreshAccess().then(function () { return request('GET', '/api/me/'); }).then(function (me) {
      if (!me.user.organizador) { throw new ApiError(403, 'organizer_only', ''); }
      session.user = me.user;
      showSignedIn();
      route();
    }, function (err) {
      if (err.status === 0) {
        showAviso(err.message);
        setTimeout(resume, 3000);
        return;
      }
      signOut(err.status === 401 ? 'La sesión terminó. Vuelva a entrar.' : err.message);
    });
  }

  resume();
}());
