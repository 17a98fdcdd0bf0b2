-- CloudPanel stand-in inventory: replaces the tables of /home/clp/htdocs/app/data/db.sq3 that the
-- product reads (`site`) or that clpctl's stand-in writes (`certificate`, `config`).
-- Follows docs/cloudpanel.md#the-inventory (table `site` with domain_name, root_directory, user)
-- and the column list of CloudPanel's Doctrine entities as published in a reverse-engineered write-up
-- (site: id … ssh_keys, created_at, updated_at; UNIQUE domain_name and user; certificate.type
-- 1 = self-signed, 2 = Let's Encrypt, 3 = imported).
-- Differs: only these three tables; no php/nodejs/python settings, databases, users or templates.
create table if not exists site (
  id integer primary key autoincrement not null,
  created_at datetime not null,
  updated_at datetime not null,
  type varchar(255) not null,
  domain_name varchar(255) not null,
  root_directory varchar(255) not null,
  user varchar(255) not null,
  user_password varchar(255) not null,
  vhost_template clob not null,
  application varchar(255) default null,
  certificate_id integer default null,
  php_settings_id integer default null,
  nodejs_settings_id integer default null,
  python_settings_id integer default null,
  basic_auth_id integer default null,
  page_speed_enabled boolean default 0 not null,
  page_speed_settings clob default null,
  allow_traffic_from_cloudflare_only boolean default 0 not null,
  varnish_cache boolean default 0 not null,
  reverse_proxy_url varchar(255) default null,
  ssh_keys clob default null
);
create unique index if not exists uniq_site_domain_name on site (domain_name);
create unique index if not exists uniq_site_user on site (user);

create table if not exists certificate (
  id integer primary key autoincrement not null,
  site_id integer default null,
  created_at datetime not null,
  updated_at datetime not null,
  uid varchar(255) not null,
  type smallint not null,
  expires_at datetime not null,
  default_certificate boolean default 0 not null,
  csr clob default null,
  private_key clob default null,
  certificate clob default null,
  certificate_chain clob default null
);
create index if not exists idx_certificate_site_id on certificate (site_id);

create table if not exists config (
  id integer primary key autoincrement not null,
  key varchar(255) not null,
  value clob default null
);
create unique index if not exists uniq_config_key on config (key);
insert or ignore into config (key, value) values ('app_version', '2.5.1');
