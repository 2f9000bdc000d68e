// Server5K organizer's console. No framework, no build step: plain files served by the server,
// loaded in this order by templates/organizador.html, sharing one namespace
// (window.Server5KConsola):
//   static/comun.js, static/duracion.js  what the pages share; clock text as the server parses it
//   organizador/pagina.js        the page's helpers, the words, times in the venue's zone
//   organizador/dialogo.js       the one dialog: confirmations and reasons
//   organizador/sesion.js        the tokens, the API, signing in and out, resuming a session
//   organizador/competencia.js   one competition open: its reads, live socket, header, tabs
//   organizador/carrera.js       tab "Carrera": race controls and the judges board
//   organizador/registros.js     tab "Registros": records, corrections and their history
//   organizador/plantilla.js     tab "Equipos y jueces": roster import, judges and teams
//   organizador/clasificacion.js tab "Resultados": standings, official results, rule, history
//   organizador.js (this file)   the sign-in screen, the competitions, the address (#c=ID&t=TAB);
//                                then it resumes this tab's session, or asks to sign in
// Every value from the server is written as text (textContent), never as markup.
(function (C) {
  'use strict';

  var $ = C.$, el = C.el, fill = C.fill, mount = C.mount, main = C.main, showAviso = C.showAviso,
    showHecho = C.showHecho, formError = C.formError, once = C.once, ESTADOS = C.ESTADOS,
    localDateTime = C.localDateTime, venueToIso = C.venueToIso, api = C.api, signIn = C.signIn,
    signedIn = C.signedIn, openCompetition = C.openCompetition,
    leaveCompetition = C.leaveCompetition;

  // -- signing in ---------------------------------------------------------------------------------
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

  // -- screens --------------------------------------------------------------------------------------
  function parseHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ''));
    var cid = Number(params.get('c'));
    return { cid: cid > 0 ? cid : null, tab: params.get('t') || 'carrera' };
  }

  function route() {
    if (!signedIn()) { return showLogin(''); }
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

  C.showLogin = showLogin;
  C.route = route;
  C.resume();
}(window.Server5KConsola));
