-- Bump the board version (see version.lua) and return it.  KEYS: 1 version
return string.format('%.0f', bump_version(KEYS[1]))
