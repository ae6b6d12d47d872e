-- scripts/changes_jsonl.lua: the change feed as JSON lines, and its token file.
local dataverse = require "dataverse"
local h = require "sync_mirror"
local dv = require "dv"

describe("changes_jsonl.lua", function()
  local emu, org, dir, ids

  setup(function()
    emu, org = h.start()
    dir = h.tmpdir()
    ids = h.seed(org, 5)
  end)

  teardown(function()
    if emu then emu:stop() end
    h.rmdir(dir)
  end)

  local function lines(stdout)
    local out = {}
    for line in stdout:gmatch("[^\n]+") do out[#out + 1] = dataverse.json.decode(line) end
    return out
  end

  local function run(args, opts)
    local all = { "--table", "account", "--page-size", "2" }
    for _, a in ipairs(args or {}) do all[#all + 1] = a end
    return h.script(emu, "changes_jsonl.lua", all, opts)
  end

  local function by_type(list)
    local t = { new_or_updated = {}, removed_or_deleted = {}, full_sync = {} }
    for _, l in ipairs(list) do t[l.type][#t[l.type] + 1] = l end
    return t
  end

  it("writes every row, then only the changes, and keeps the token in the file", function()
    local tokf = dir .. "/a.token"
    local r = run { "--since", tokf, "--columns", "name,revenue" }
    assert.equal(0, r.status, r.stderr)
    local out = lines(r.stdout)
    local _, total = h.table_rows(org, "account")
    assert.equal(total, #out)
    for _, l in ipairs(out) do
      assert.equal("new_or_updated", l.type)
      assert.equal(l.id, l.row.accountid)
      assert.is_not_nil(l.row.name)
    end
    local first = dv.read_file(tokf)
    assert.matches("%S", first)

    local c, u, d = h.churn(org, ids)
    r = run { "--since", tokf, "--columns", "name,revenue" }
    assert.equal(0, r.status, r.stderr)
    local t = by_type(lines(r.stdout))
    assert.equal(c + u, #t.new_or_updated)
    assert.equal(d, #t.removed_or_deleted)
    for _, l in ipairs(t.removed_or_deleted) do
      assert.is_nil(org:retrieve("account", l.id))
    end
    for _, l in ipairs(t.new_or_updated) do
      local row = org:retrieve("account", l.id, { columns = { "name" } })
      assert.equal(row.name, l.row.name)
    end
    assert.are_not.equal(first, dv.read_file(tokf))

    r = run { "--since", tokf }
    assert.equal(0, r.status, r.stderr)
    assert.equal("", r.stdout)
  end)

  it("leaves the token file alone when the run dies, so the next run repeats the changes", function()
    local tokf = dir .. "/b.token"
    assert.equal(0, run({ "--since", tokf }).status)
    local c, u, d = h.churn(org, ids)
    local before = dv.read_file(tokf)
    local r = run({ "--since", tokf }, { prelude = h.kill_prelude(2) })
    assert.are_not.equal(0, r.status)
    assert.equal(before, dv.read_file(tokf))
    r = run { "--since", tokf }
    assert.equal(0, r.status, r.stderr)
    assert.equal(c + u + d, #lines(r.stdout))
    assert.are_not.equal(before, dv.read_file(tokf))
  end)

  it("starts with a full_sync line and every row when the token has expired", function()
    local tokf = dir .. "/c.token"
    assert.equal(0, run({ "--since", tokf }).status)
    h.churn(org, ids)
    emu:advance(8 * 24 * 3600)
    local r = run { "--since", tokf }
    assert.equal(0, r.status, r.stderr)
    local out = lines(r.stdout)
    assert.equal("full_sync", out[1].type)
    local _, total = h.table_rows(org, "account")
    assert.equal(total + 1, #out)
    assert.equal(total, #by_type(out).new_or_updated)
  end)

  it("without --since writes everything and keeps no token", function()
    local r = run()
    assert.equal(0, r.status, r.stderr)
    local _, total = h.table_rows(org, "account")
    assert.equal(total, #lines(r.stdout))
  end)

  it("an unknown table or one without change tracking: clear message, status 1", function()
    local tokf = dir .. "/d.token"
    local r = h.script(emu, "changes_jsonl.lua", { "--table", "nosuchtable", "--since", tokf })
    assert.equal(1, r.status)
    assert.matches('changes_jsonl: unknown table "nosuchtable"', r.stderr, 1, true)
    assert.equal("", r.stdout)
    assert.is_nil(io.open(tokf))
    r = h.script(emu, "changes_jsonl.lua", { "--table", "solution" })
    assert.equal(1, r.status)
    assert.matches("does not have change tracking enabled", r.stderr, 1, true)
  end)

  it("--out: whole lines after kills at random points, a partial last line repaired, exact replay", function()
    local tokf, outf = dir .. "/k.token", dir .. "/k.jsonl"
    math.randomseed(14)
    local function replay()
      local f = assert(io.open(outf, "rb"))
      local text = f:read("a")
      f:close()
      assert.equal("\n", text:sub(-1))
      local state = {}
      for line in text:gmatch("([^\n]*)\n") do
        local l = dataverse.json.decode(line) -- strict: a partial line raises
        if l.type == "full_sync" then
          state = {}
        elseif l.type == "removed_or_deleted" then
          state[l.id] = nil
        else
          state[l.id] = l.row.name
        end
      end
      return state
    end
    assert.equal(0, run({ "--since", tokf, "--out", outf, "--columns", "name" }).status)
    for round = 1, 8 do
      h.churn(org, ids, { create = 2, update = 1, delete = 1 })
      local r = run({ "--since", tokf, "--out", outf, "--columns", "name" },
        { prelude = h.kill_prelude(nil, math.random(1, 4)) })
      assert.are_not.equal(0, r.status)
      if round % 2 == 0 then
        -- What a write cut short would leave: half a line.
        local f = assert(io.open(outf, "ab"))
        f:write('{"type":"new_or_upd')
        f:close()
      end
    end
    local r = run { "--since", tokf, "--out", outf, "--columns", "name" }
    assert.equal(0, r.status, r.stderr)
    assert.matches("account: changes, ", r.stderr, 1, true)
    local want = {}
    for row in org:query("account", { columns = { "name" } }) do want[row.accountid] = row.name end
    assert.same(want, replay())
  end)
end)
