// The organizer's console, the "Registros" tab: every record as it counts, filtered by team or
// judge, paper times added, and the corrections (void, restore, move, fix, accept), each asked
// with its reason in the dialog, and each record's history.
(function (C) {
  'use strict';

  var $ = C.$, el = C.el, fill = C.fill, act = C.act, ask = C.ask, MOTIVO = C.MOTIVO,
    api = C.api, download = C.download, base = C.base, done = C.done, teams = C.teams,
    teamName = C.teamName, teamOptions = C.teamOptions, judgeOptions = C.judgeOptions,
    judgesById = C.judgesById, formatMs = C.formatMs, parseTiempo = C.parseTiempo,
    localTime = C.localTime, localDateTime = C.localDateTime, change = C.change,
    ACCIONES = C.ACCIONES;

  var registrosPanel = C.panels.registros = {
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
        return download(base('registros/?format=csv'), 'registros-competencia-' + C.state.cid + '.csv');
      });
      act($('excel-registros'), function () {  // ';' and decimal comma: Excel in Spanish
        return download(base('registros/?format=csv&excel=1'), 'registros-competencia-' + C.state.cid + '-excel.csv');
      });
      ['filtro-equipo', 'filtro-juez'].forEach(function (id) {
        $(id).addEventListener('change', function () {
          C.state.filtroEquipo = $('filtro-equipo').value;
          C.state.filtroJuez = $('filtro-juez').value;
          C.state.limite = 200;
          registrosPanel.render();
        });
      });
      $('mas-registros').addEventListener('click', function () {
        C.state.limite += 200;
        registrosPanel.render();
      });
    },
    render: function () {
      options($('filtro-equipo'), [['', 'todos']].concat(teamOptions()), C.state.filtroEquipo);
      options($('filtro-juez'), judgeOptions(['', 'todos']).concat([['papel', 'en papel']]),
        C.state.filtroJuez);
      var shown = C.state.records.filter(function (r) {
        return (!C.state.filtroEquipo || String(r.equipo_id) === C.state.filtroEquipo) &&
          (!C.state.filtroJuez || (C.state.filtroJuez === 'papel' ? r.juez_id === null :
            String(r.juez_id) === C.state.filtroJuez));
      }).reverse();  // newest first
      $('cuenta-registros').textContent = shown.length + (shown.length === 1 ? ' registro' : ' registros') +
        (shown.length > C.state.limite ? ' (se muestran los ' + C.state.limite + ' más recientes)' : '');
      var byTeam = {};
      teams().forEach(function (t) { byTeam[t.id] = t; });
      var judges = judgesById();
      fill($('registros'), shown.slice(0, C.state.limite).map(function (r) {
        return recordCard(r, byTeam, judges);
      }));
      $('mas-registros').hidden = shown.length <= C.state.limite;
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

  function historyLine(h) {
    return el('li', {}, el('strong', {}, ACCIONES[h.accion] || h.accion), ' · ',
      localDateTime(h.en), ' · ', h.usuario || 'sistema',
      h.motivo ? ' · «' + h.motivo + '»' : '',
      h.antes || h.despues ? el('span', { className: 'sub cambio' },
        change(h.antes) + (h.antes && h.despues ? ' → ' : '') + change(h.despues)) : null);
  }
}(window.Server5KConsola));
