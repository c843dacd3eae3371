"""Everything jobcast keeps in Redis: keys, plans and their Lua scripts, and the stores."""
