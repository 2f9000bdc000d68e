// The organizer's console, the "Resultados" tab: the standings by category, the results made
// official or reopened, the scoring rule, the exports and the competition's history.
(function (C) {
  'use strict';

  var $ = C.$, el = C.el, fill = C.fill, act = C.act, ask = C.ask, MOTIVO = C.MOTIVO,
    api = C.api, download = C.download, base = C.base, done = C.done,
    patchCompetition = C.patchCompetition, localDateTime = C.localDateTime, change = C.change,
    ACCIONES = C.ACCIONES;
  var REGLAS = [['suma', 'Suma de los mejores tiempos'], ['promedio', 'Media de los mejores tiempos'],
    ['puntos', 'Por puestos (como en cross)']];

  var resultados = C.panels.resultados = {
    mount: function () {
      act($('cambiar-regla'), changeRule);
      $('ver-publica').href = '/competencias/' + C.state.cid + '/';
      act($('csv-auditoria'), function () {
        return download(base('auditoria/?format=csv'), 'auditoria-competencia-' + C.state.cid + '.csv');
      });
      act($('excel-auditoria'), function () {
        return download(base('auditoria/?format=csv&excel=1'), 'auditoria-competencia-' + C.state.cid + '-excel.csv');
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
      var comp = C.state.comp;
      var results = C.state.results;
      $('oficializar').hidden = comp.oficial || comp.estado !== 'finalizada';
      $('reabrir').hidden = !comp.oficial;
      $('regla-texto').textContent = results.regla ? results.regla.texto : '';
      $('cambiar-regla').disabled = comp.oficial;
      $('cambiar-regla').title = comp.oficial ? 'Reabra los resultados para cambiar la regla' : '';
      // One tab per category, as on the public page (General: every team).
      var names = results.categorias || [];
      if (C.state.categoria !== null && names.indexOf(C.state.categoria) < 0) { C.state.categoria = null; }
      $('categorias-resultados').hidden = !names.length;
      fill($('categorias-resultados'), [null].concat(names).map(function (name) {
        var tab = el('button', { type: 'button' }, name === null ? 'General' : name);
        tab.setAttribute('role', 'tab');
        tab.setAttribute('aria-selected', String(name === C.state.categoria));
        tab.setAttribute('aria-controls', 'clasificacion');
        tab.addEventListener('click', function () {
          C.state.categoria = name;
          resultados.render();
        });
        return tab;
      }));
      var filtro = C.state.categoria === null ? '' : '&categoria=' + encodeURIComponent(C.state.categoria);
      $('csv-resultados').href = base('resultados/?format=csv' + filtro);
      $('excel-resultados').href = base('resultados/?format=csv&excel=1' + filtro);
      var rows = results.clasificacion.filter(function (r) {
        return C.state.categoria === null || r.categoria === C.state.categoria;
      });
      fill($('clasificacion').querySelector('tbody'), rows.map(function (r) {
        var pos = C.state.categoria === null ? r.posicion : r.posicion_categoria;
        return el('tr', { dataset: { equipoId: r.equipo_id } },
          el('td', { className: 'pos' }, r.estado !== 'ok' ? r.estado.toUpperCase() :
            (pos === null ? '–' : pos)),
          el('td', {}, el('strong', {}, r.equipo), el('span', { className: 'sub' }, ' · dorsal ' + r.dorsal +
            (r.categoria && C.state.categoria === null ? ' · ' + r.categoria : ''))),
          el('td', {}, r.registros_contados), el('td', { className: 'tiempo' }, r.tiempo_total || '—'));
      }));
      if (C.state.audit) {
        fill($('auditoria'), C.state.audit.slice().reverse().map(function (a) {
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
    var regla = C.state.results.regla;
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
}(window.Server5KConsola));
