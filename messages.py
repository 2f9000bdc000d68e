"""What a user is told: every text of a session's refusals, in one place (a leaf: imports
nothing of Server5K, so the domain and the handlers both read it). Codes stay where they are
raised; a text is changed here, once.
"""

# The session no longer holds (identity.session_refusal decides which one applies).
USER_INACTIVE = "El usuario no existe o está inactivo."
TOKEN_REVOKED = ("La sesión ya no vale (cambió la contraseña o se desactivó el juez): inicie "
                 "sesión de nuevo.")
TOKEN_LOGGED_OUT = "La sesión se cerró (token revocado): inicie sesión de nuevo."
NOT_A_JUDGE = "El usuario no tiene perfil de juez."
JUDGE_INACTIVE = "El juez está inactivo."

# The team a judge writes for or reads (``% equipo_id``).
TEAM_NOT_FOUND = "El equipo %s no existe."
TEAM_NOT_ASSIGNED = "El equipo %d no está asignado a este juez."
WRONG_JUDGE = "El token no pertenece al juez %s."

# Login refused (the guide's /api/token/ and Movil5K's /api/login/).
INVALID_CREDENTIALS = "Usuario o contraseña incorrectos, o usuario inactivo."

# Why a socket of a session that no longer holds is closed (its close frame: ASCII, short).
SOCKET_REVOKED = "Sesion revocada: inicie sesion de nuevo"
