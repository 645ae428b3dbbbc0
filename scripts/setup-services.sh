#!/usr/bin/env bash
# What the tests need on a fresh Debian machine (run as root): MariaDB for the chat server's MySQL storage
# tests, with a user `ezipc` (password `ezipc`) that may create databases named ezipc_*; openssl (the tls://
# tests make a throwaway CA) and tmux (the chat client's end-to-end test runs it in a pseudo-terminal); the
# cryptography package for the Python client's encrypted connections (Debian: python3-cryptography), when no
# Python on the machine has it; Mono (mcs) and NUnit 2.6 to build and test the C# client (clients/csharp);
# Chromium for the browser tests (test/web, driven by playwright-core); nats-server, whose JetStream clusters
# the cluster tests start (test/cluster: three nodes on loopback; the benchmarks compare with it too).
set -euo pipefail
if ! command -v nats-server >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nats-server >/dev/null
fi
if ! command -v chromium >/dev/null; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if ! command -v mcs >/dev/null || ! command -v nunit-console >/dev/null; then
  apt-get update -qq && apt-get install -y -qq mono-devel nunit-console libnunit-cil-dev >/dev/null
fi
if ! python3 -c "import cryptography" 2>/dev/null && ! /usr/bin/python3 -c "import cryptography" 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-cryptography >/dev/null
fi
if ! command -v openssl >/dev/null || ! command -v tmux >/dev/null || ! command -v strace >/dev/null; then
  apt-get update -qq && apt-get install -y -qq openssl tmux strace >/dev/null
fi
if ! command -v mariadb-admin >/dev/null; then
  apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null
fi
if ! mariadb-admin ping >/dev/null 2>&1; then
  service mariadb start >/dev/null 2>&1 || (mysqld_safe --user=mysql >/dev/null 2>&1 &)
  for _ in $(seq 1 60); do
    mariadb-admin ping >/dev/null 2>&1 && break
    sleep 0.5
  done
  mariadb-admin ping >/dev/null
fi
mariadb <<'SQL'
CREATE USER IF NOT EXISTS 'ezipc'@'localhost' IDENTIFIED BY 'ezipc';
CREATE USER IF NOT EXISTS 'ezipc'@'127.0.0.1' IDENTIFIED BY 'ezipc';
GRANT ALL PRIVILEGES ON `ezipc\_%`.* TO 'ezipc'@'localhost';
GRANT ALL PRIVILEGES ON `ezipc\_%`.* TO 'ezipc'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
echo "MariaDB ready: mysql://ezipc:ezipc@127.0.0.1:3306/ (databases ezipc_*)"
