// The organizer's console, one competition open: what it reads (the judges board, the records,
// the standings and, on its tab, the history), its live socket, its header and clock, its tabs
// (each tab's file adds its panel to C.panels: mount() once, render() after every read), and
// its name and listing.
//
// Live updates: /ws/organizador/{id}/ says what changed; the console then reads the judges
// board, the records and the standings again (one read in flight at a time, and one more if
// something changed meanwhile).
(function (C) {
  'use strict';

  var $ = C.$, main = C.main, mount = C.mount, showAviso = C.showAviso, showHecho = C.showHecho,
    act = C.act, ask = C.ask, api = C.api, signOut = C.signOut, ESTADOS = C.ESTADOS;
  var comun = window.Server5KComun, plainJson = comun.plainJson, clockText = comun.clockText;
  var enVivoEl = document.getElementById('en-vivo');

  C.panels = {};  // carrera, registros, plantilla, resultados: one file each
  C.state = null;  // {cid, tab, comp, board, records, results, audit, filtro, limite, ...}

  function openCompetition(cid, tab) {
    if (!C.state || C.state.cid !== cid) {
      leaveCompetition();
      C.state = { cid: cid, tab: tab, comp: null, board: null, records: null, results: null,
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
    C.state.tab = tab;
    Array.prototype.forEach.call(main.querySelectorAll('[data-pestana]'), function (link) {
      var current = link.dataset.pestana === tab;
      link.classList.toggle('activa', current);
      if (current) { link.setAttribute('aria-current', 'page'); } else { link.removeAttribute('aria-current'); }
    });
    mountPanel();
    load();
  }

  function leaveCompetition() {
    if (!C.state) { return; }
    C.state.closed = true;
    if (C.state.socket) { C.state.socket.close(); }
    C.state = null;
    enVivoEl.hidden = true;
  }

  // Read what the console shows; one read at a time, and one more if asked meanwhile.
  function load() {
    var mine = C.state;
    if (!mine) { return; }
    if (mine.loading) { mine.again = true; return; }
    mine.loading = true;
    var base = '/api/competencias/' + mine.cid + '/';
    var reads = [api('GET', base + 'jueces/'), api('GET', base + 'registros/'),
      api('GET', base + 'resultados/'),
      mine.tab === 'resultados' ? api('GET', base + 'auditoria/') : Promise.resolve(null)];
    Promise.all(reads).then(function (answers) {
      if (C.state !== mine) { return; }
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
      if (C.state !== mine) { return; }
      showAviso(err.status === 404 ? 'Esa competencia no existe.' : err.message);
    }).then(function () {
      mine.loading = false;
      if (mine.again && C.state === mine) { mine.again = false; load(); }
    });
  }

  function connect() {
    var mine = C.state;
    api('POST', '/api/organizador/ws-ticket/').then(function (answer) {
      if (C.state !== mine || mine.closed) { return; }
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
        if (C.state !== mine || mine.closed) { return; }
        showLive(false);
        if (event.code === 1008) {
          signOut('Su sesión ya no vale (cambió la contraseña o se desactivó la cuenta). Vuelva a entrar.');
          return;
        }
        reconnectLater(mine);
      };
    }, function () {
      if (C.state === mine && !mine.closed) { showLive(false); reconnectLater(mine); }
    });
  }

  function reconnectLater(mine) {
    var delay = comun.backoff(mine.retries, 15000);
    mine.retries += 1;
    setTimeout(function () { if (C.state === mine && !mine.closed) { connect(); } }, delay);
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
    (C.state.board ? C.state.board.jueces : []).forEach(function (j) { map[j.id] = j; });
    return map;
  }

  // Every team, by dorsal: the standings' rows (status, penalty) with the board's (judge, category).
  function teams() {
    var byId = {};
    (C.state.results ? C.state.results.clasificacion : []).forEach(function (row) {
      byId[row.equipo_id] = { id: row.equipo_id, nombre: row.equipo, dorsal: row.dorsal,
        estado: row.estado, penalizacion_ms: row.penalizacion_ms, juez_id: null,
        categoria: null, registros: 0 };
    });
    (C.state.board ? C.state.board.jueces : []).forEach(function (j) {
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
    return options.concat((C.state.board ? C.state.board.jueces : []).map(function (j) {
      return [j.id, j.nombre + ' (' + j.username + ')'];
    }));
  }

  // -- rendering ------------------------------------------------------------------------------------
  function render() {
    if (!C.state || !C.state.comp) { return; }
    var comp = C.state.comp;
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
    C.panels[C.state.tab].render();
  }

  function tick() {
    var reloj = $('reloj');
    if (!reloj || !C.state || !C.state.comp) { return; }
    var comp = C.state.comp;
    reloj.hidden = !comp.started_at;
    if (comp.started_at) {
      var end = comp.finished_at ? Date.parse(comp.finished_at) : Date.now() + C.state.offset;
      reloj.textContent = clockText(end - Date.parse(comp.started_at));
    }
  }
  setInterval(tick, 250);

  function mountPanel() {
    var panel = C.panels[C.state.tab] ? C.state.tab : 'carrera';
    C.state.tab = panel;
    mount($('panel'), 't-' + panel);
    C.panels[panel].mount();
    if (C.state.comp) { C.panels[panel].render(); }
  }

  // After a change: say so and read again at once (the socket will say so too).
  function done(message) {
    return function () { showHecho(message); load(); };
  }

  var base = function (path) { return '/api/competencias/' + C.state.cid + '/' + (path || ''); };

  // -- the competition itself: its name and whether the public index lists it ---------------------------
  function patchCompetition(body) {
    return api('PATCH', base(), { body: body });
  }

  function renameCompetition() {
    return ask({ titulo: 'Cambiar el nombre de la competencia',
      texto: 'El nuevo nombre se ve al momento en la página pública y en los móviles de los jueces.',
      campos: [{ name: 'nombre', label: 'Nombre', value: C.state.comp.nombre, required: true, maxLength: 200 },
        { name: 'motivo', label: 'Motivo (opcional)', maxLength: 500 }],
      aceptar: 'Guardar nombre',
      accion: function (v) {
        var body = { nombre: v.nombre };
        if (v.motivo) { body.motivo = v.motivo; }
        return patchCompetition(body);
      } }).then(function (ok) { if (ok) { done('Nombre cambiado')(); } });
  }

  function toggleListing() {
    var hide = !C.state.comp.oculta;
    return ask({ titulo: hide ? 'Ocultar del índice público' : 'Mostrar en el índice público',
      texto: hide ? 'La competencia deja de aparecer en la lista de la página principal (para una carrera de prueba). Su página de resultados sigue abierta para quien tenga la dirección, y los jueces no notan nada.' :
        'La competencia vuelve a aparecer en la lista de la página principal.',
      aceptar: hide ? 'Sí, ocultar' : 'Sí, mostrar',
      accion: function () { return patchCompetition({ oculta: hide }); } })
      .then(function (ok) { if (ok) { done(hide ? 'Oculta del índice público' : 'Visible en el índice público')(); } });
  }

  Object.assign(C, { openCompetition: openCompetition, leaveCompetition: leaveCompetition,
    load: load, judgesById: judgesById, teams: teams, teamName: teamName,
    teamOptions: teamOptions, judgeOptions: judgeOptions, done: done, base: base,
    patchCompetition: patchCompetition });
}(window.Server5KConsola));
