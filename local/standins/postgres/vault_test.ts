// The Vault stand-in (supabase_vault extension) against the Postgres of a running local stack.

import assert from "node:assert/strict";
import { connectStackDb, dbTest, type Sql } from "./test_helpers.ts";

async function withVault(run: (sql: Sql, name: (label: string) => string) => Promise<void>) {
  const sql = await connectStackDb();
  const prefix = `vault_test_${crypto.randomUUID().slice(0, 8)}_`;
  try {
    await run(sql, (label) => prefix + label);
  } finally {
    await sql`delete from vault.secrets where name like ${prefix + "%"}`;
    await sql.end({ timeout: 5 });
  }
}

type Decrypted = {
  id: string;
  name: string | null;
  description: string;
  secret: string;
  decrypted_secret: string;
  updated_at: Date;
};

async function decrypted(sql: Sql, id: string): Promise<Decrypted> {
  const [row] = await sql<Decrypted[]>`select * from vault.decrypted_secrets where id = ${id}`;
  return row;
}

dbTest(
  "create_secret stores ciphertext and decrypted_secrets gives the plaintext back",
  async () => {
    await withVault(async (sql, name) => {
      const plaintext = "sb_secret_örnek 'quoted' value";
      const [{ id }] = await sql<{ id: string }[]>`
      select vault.create_secret(${plaintext}, ${name("url")}, 'the url') as id`;

      const row = await decrypted(sql, id);
      assert.equal(row.name, name("url"));
      assert.equal(row.description, "the url");
      assert.equal(row.decrypted_secret, plaintext);
      assert.notEqual(row.secret, plaintext);
      assert.ok(!row.secret.includes("sb_secret"), "the stored secret must not hold the plaintext");
    });
  },
);

dbTest("update_secret replaces what it is given and keeps the rest", async () => {
  await withVault(async (sql, name) => {
    const [{ id }] = await sql<{ id: string }[]>`
      select vault.create_secret('first', ${name("key")}, 'kept description') as id`;
    const before = await decrypted(sql, id);

    await sql`select vault.update_secret(${id}, 'second')`;
    const afterValue = await decrypted(sql, id);
    assert.equal(afterValue.decrypted_secret, "second");
    assert.equal(afterValue.name, name("key"));
    assert.equal(afterValue.description, "kept description");
    assert.ok(afterValue.updated_at >= before.updated_at);

    await sql`select vault.update_secret(${id}, new_name => ${
      name("renamed")
    }, new_description => 'new')`;
    const renamed = await decrypted(sql, id);
    assert.equal(renamed.decrypted_secret, "second");
    assert.equal(renamed.name, name("renamed"));
    assert.equal(renamed.description, "new");
  });
});

dbTest("a secret name is unique, while unnamed secrets may repeat", async () => {
  await withVault(async (sql, name) => {
    await sql`select vault.create_secret('one', ${name("dup")})`;
    await assert.rejects(
      sql`select vault.create_secret('two', ${name("dup")})`,
      (error: { code?: string }) => error.code === "23505",
    );
    const ids = await sql<{ id: string }[]>`
      select vault.create_secret('unnamed', null, ${name("unnamed")}) as id
      union all select vault.create_secret('unnamed', null, ${name("unnamed")})`;
    await sql`delete from vault.secrets where id in ${sql(ids.map((row) => row.id))}`;
    assert.equal(ids.length, 2);
  });
});

dbTest("anon and authenticated cannot read or create secrets; service_role can", async () => {
  await withVault(async (sql, name) => {
    const [{ id }] = await sql<{ id: string }[]>`
      select vault.create_secret('hidden', ${name("grants")}) as id`;

    for (const role of ["anon", "authenticated"]) {
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx.unsafe(`set local role ${role}`);
          await tx`select decrypted_secret from vault.decrypted_secrets where id = ${id}`;
        }),
        /permission denied for schema vault/,
        `${role} must not read vault.decrypted_secrets`,
      );
      await assert.rejects(
        sql.begin(async (tx) => {
          await tx.unsafe(`set local role ${role}`);
          await tx`select vault.create_secret('x', ${name(role)})`;
        }),
        /permission denied/,
        `${role} must not call vault.create_secret`,
      );
    }

    const [seen] = await sql.begin(async (tx) => {
      await tx`set local role service_role`;
      return await tx<{ decrypted_secret: string }[]>`
        select decrypted_secret from vault.decrypted_secrets where id = ${id}`;
    });
    assert.equal(seen.decrypted_secret, "hidden");
  });
});
