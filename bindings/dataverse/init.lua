-- The Lua half of the `dataverse` module: receives the table built in C
-- (bindings/lua_dataverse.c) and adds the parts that read better in Lua.
return function(M)
  return M
end
