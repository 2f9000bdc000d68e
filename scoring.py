"""The scoring rules an event may choose (ORGANIZER.md "Standings for the awards"): which rule,
how many times count, the rule in words.
"""

import models
import race_defaults


def check_rule(value, comp, errors):
    """The new rule (``tipo``, ``contados``, ``minimo``) from a partial one, or None with
    ``errors`` filled in."""
    if not isinstance(value, dict):
        errors["regla"] = "Un objeto {tipo, contados, minimo}."
        return None
    rule = {"tipo": value.get("tipo", comp.regla), "contados": value.get("contados", comp.contados),
            "minimo": value.get("minimo", comp.minimo)}
    for key in sorted(set(value) - set(rule)):
        errors["regla." + key] = "Campo desconocido: tipo, contados o minimo."
    if rule["tipo"] not in REGLAS:
        errors["regla.tipo"] = "Debe ser uno de: %s." % ", ".join(REGLAS)
    if rule["contados"] is not None and not (models.is_int(rule["contados"])
                                             and 1 <= rule["contados"] <= MAX_CONTADOS):
        errors["regla.contados"] = ("Un entero de 1 a %d, o null (el valor del servidor)."
                                    % MAX_CONTADOS)
    if not (models.is_int(rule["minimo"]) and 1 <= rule["minimo"] <= MAX_CONTADOS):
        errors["regla.minimo"] = "Un entero de 1 a %d." % MAX_CONTADOS
    return None if any(k.startswith("regla") for k in errors) else rule


# The scoring rules an event may choose (ORGANIZER.md "Standings for the awards").
REGLAS = ("suma", "promedio", "puntos")
DESPLAZADORES = 2  # puntos: a team's runners after its counted N who only push others back
MAX_CONTADOS = 1000


def competition_rule(comp, scored_per_team=race_defaults.COMPETITION_RULE):
    """The rule in force for a Competencia: ``{"tipo", "contados", "minimo", "texto"}``.
    ``contados`` is ``scored_per_team`` when given, else the competition's, else the server's
    ``race.records_scored_per_team``; ``texto`` says the rule in words (the page, the CSV)."""
    contados = contados_of(comp, scored_per_team)
    tipo = comp.regla if comp.regla in REGLAS else "suma"
    minimo = max(1, comp.minimo or 1)
    return {"tipo": tipo, "contados": contados, "minimo": minimo,
            "texto": rule_text(tipo, contados, minimo)}


def contados_of(comp, scored_per_team):
    """N: the count given, else the competition's, else the server's."""
    if scored_per_team is race_defaults.COMPETITION_RULE:
        return comp.contados or race_defaults.DEFAULTS["contados"]
    return scored_per_team


def rule_text(tipo, contados, minimo):
    """A scoring rule in words, in Spanish like the results page."""
    de_los_mejores = ("del mejor tiempo" if contados == 1
                      else "de los %d mejores tiempos" % contados)
    if tipo == "promedio":
        text = ("Media %s de cada equipo: gana la media más baja (una penalización se suma a "
                "la media); igual media, igual puesto." % de_los_mejores)
    elif tipo == "puntos":
        text = ("Por puestos, como en cross: cada corredor de los equipos que clasifican suma "
                "el puesto en que llegó entre ellos; cuentan %s de cada equipo y los %d "
                "siguientes solo desplazan; gana la suma más baja y un empate lo decide el "
                "corredor %d.º de cada equipo (una penalización retrasa a todos los corredores "
                "del equipo)." % ("el primero" if contados == 1 else "los %d primeros" % contados,
                                  DESPLAZADORES, contados + 1))
    else:
        text = ("Suma %s de cada equipo: primero el equipo con más llegadas, luego el menor "
                "tiempo total (penalización incluida); igual total, igual puesto."
                % de_los_mejores)
    if minimo > 1:
        text += " Un equipo necesita al menos %d llegadas para clasificar." % minimo
    return text
