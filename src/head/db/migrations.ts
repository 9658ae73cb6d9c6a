/**
 * Numbered migrations. Each runs once, in its own transaction, and is recorded in
 * `schema_migrations`. Never edit a migration that has shipped: add the next number.
 */
export const migrations: readonly { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'jobs, tasks, attempts, nodes',
    sql: `
      CREATE TABLE jobs (
        seq               INTEGER PRIMARY KEY AUTOINCREMENT,
        id                TEXT NOT NULL UNIQUE,
        spec_hash         TEXT NOT NULL,
        entrypoint        TEXT NOT NULL,
        runtime_env       TEXT NOT NULL,
        metadata          TEXT NOT NULL,
        request           TEXT NOT NULL,
        parallel          INTEGER NOT NULL,
        max_retries       INTEGER NOT NULL,
        retry_backoff_s   REAL NOT NULL,
        timeout_s         REAL,
        priority          INTEGER NOT NULL,
        wait_for_capacity INTEGER NOT NULL,
        schedule          TEXT,
        status            TEXT NOT NULL,
        stop_requested    INTEGER NOT NULL DEFAULT 0,
        failed_task       INTEGER,
        message           TEXT,
        error_type        TEXT,
        exit_code         INTEGER,
        created_at        INTEGER NOT NULL,
        start_time        INTEGER,
        end_time          INTEGER,
        driver_node_id    TEXT
      );
      CREATE INDEX jobs_by_status ON jobs(status, seq);
      CREATE INDEX jobs_by_schedule ON jobs(schedule, seq) WHERE schedule IS NOT NULL;

      CREATE TABLE tasks (
        job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        state       TEXT NOT NULL,
        attempt     INTEGER NOT NULL DEFAULT 0,
        node_id     TEXT,
        gpu_ids     TEXT NOT NULL DEFAULT '[]',
        not_before  INTEGER NOT NULL DEFAULT 0,
        log_start   INTEGER NOT NULL DEFAULT 0,
        exit_code   INTEGER,
        error_type  TEXT,
        message     TEXT,
        started_at  INTEGER,
        ended_at    INTEGER,
        PRIMARY KEY (job_id, idx)
      ) WITHOUT ROWID;
      CREATE INDEX tasks_active ON tasks(state) WHERE state IN ('PENDING', 'ASSIGNED', 'RUNNING');

      CREATE TABLE attempts (
        job_id      TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        idx         INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        node_id     TEXT,
        assigned_at INTEGER NOT NULL,
        started_at  INTEGER,
        ended_at    INTEGER,
        outcome     TEXT,
        exit_code   INTEGER,
        error_type  TEXT,
        message     TEXT,
        PRIMARY KEY (job_id, idx, attempt)
      ) WITHOUT ROWID;

      CREATE TABLE nodes (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        hostname      TEXT NOT NULL,
        state         TEXT NOT NULL,
        totals        TEXT NOT NULL,
        sandbox       TEXT NOT NULL,
        registered_at INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        last_seq      INTEGER NOT NULL DEFAULT 0,
        usage         TEXT NOT NULL DEFAULT '{}'
      );
      CREATE INDEX nodes_by_state ON nodes(state);
    `,
  },
  {
    version: 2,
    name: 'schedules',
    sql: `
      CREATE TABLE schedules (
        name                TEXT PRIMARY KEY,
        cron                TEXT NOT NULL,
        timezone            TEXT NOT NULL,
        concurrency         TEXT NOT NULL,
        starting_deadline_s REAL,
        suspended           INTEGER NOT NULL DEFAULT 0,
        job                 TEXT NOT NULL,
        definition_hash     TEXT NOT NULL,
        created_at          INTEGER NOT NULL,
        updated_at          INTEGER NOT NULL,
        next_run_at         INTEGER
      );
      CREATE INDEX schedules_due ON schedules(next_run_at) WHERE suspended = 0;

      CREATE TABLE schedule_runs (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule     TEXT NOT NULL REFERENCES schedules(name) ON DELETE CASCADE,
        scheduled_at INTEGER NOT NULL,
        fired_at     INTEGER NOT NULL,
        trigger_kind TEXT NOT NULL,
        action       TEXT NOT NULL,
        job_id       TEXT,
        replaced     TEXT NOT NULL DEFAULT '[]',
        detail       TEXT
      );
      CREATE INDEX schedule_runs_by_schedule ON schedule_runs(schedule, seq);
    `,
  },
  {
    version: 3,
    name: 'in-job task counts of finished jobs',
    sql: `ALTER TABLE jobs ADD COLUMN injob_counts TEXT;`,
  },
  {
    version: 4,
    name: 'user and agent tokens; the credential each node registered with',
    sql: `
      CREATE TABLE tokens (
        id         TEXT PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
        name       TEXT NOT NULL UNIQUE,
        hash       TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      ALTER TABLE nodes ADD COLUMN credential TEXT;
      CREATE INDEX nodes_by_name ON nodes(name, registered_at);
    `,
  },
  {
    version: 5,
    name: "the message Ray's clients read for a failed job",
    sql: `ALTER TABLE jobs ADD COLUMN ray_message TEXT;`,
  },
  {
    version: 6,
    name: 'job counts by status and job labels, kept by triggers',
    sql: `
      CREATE TABLE job_status_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO job_status_counts (status, n) SELECT status, COUNT(*) FROM jobs GROUP BY status;
      CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_status_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
      END;
      CREATE TRIGGER job_counts_update AFTER UPDATE OF status ON jobs WHEN OLD.status != NEW.status BEGIN
        UPDATE job_status_counts SET n = n - 1 WHERE status = OLD.status;
        INSERT INTO job_status_counts (status, n) VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
      END;
      CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_status_counts SET n = n - 1 WHERE status = OLD.status;
      END;

      CREATE TABLE job_labels (
        seq   INTEGER NOT NULL REFERENCES jobs(seq) ON DELETE CASCADE,
        key   TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (seq, key)
      ) WITHOUT ROWID;
      CREATE INDEX job_labels_by_value ON job_labels(key, value, seq);
      INSERT OR IGNORE INTO job_labels (seq, key, value)
        SELECT jobs.seq, m.key, CAST(m.value AS TEXT) FROM jobs, json_each(jobs.metadata) AS m WHERE m.key != 'job_submission_id';
      CREATE TRIGGER job_labels_insert AFTER INSERT ON jobs BEGIN
        INSERT OR IGNORE INTO job_labels (seq, key, value)
          SELECT NEW.seq, m.key, CAST(m.value AS TEXT) FROM json_each(NEW.metadata) AS m WHERE m.key != 'job_submission_id';
      END;
    `,
  },
  {
    version: 7,
    name: 'dashboard sessions',
    sql: `
      CREATE TABLE sessions (
        id_hash      TEXT PRIMARY KEY,
        kind         TEXT NOT NULL CHECK (kind IN ('admin', 'user')),
        credential   TEXT NOT NULL,
        name         TEXT NOT NULL,
        csrf         TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL,
        last_seen_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX sessions_by_expiry ON sessions(expires_at);
    `,
  },
  {
    version: 8,
    name: 'packages each job names',
    sql: `
      CREATE TABLE job_packages (
        name   TEXT NOT NULL,
        job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        PRIMARY KEY (name, job_id)
      ) WITHOUT ROWID;
      CREATE INDEX job_packages_by_job ON job_packages(job_id);
      INSERT OR IGNORE INTO job_packages (name, job_id)
        SELECT substr(json_extract(runtime_env, '$.working_dir'), 7), id FROM jobs
        WHERE json_extract(runtime_env, '$.working_dir') LIKE 'gcs://%';
      INSERT OR IGNORE INTO job_packages (name, job_id)
        SELECT substr(m.value, 7), j.id FROM jobs j, json_each(j.runtime_env, '$.py_modules') m
        WHERE m.type = 'text' AND m.value LIKE 'gcs://%';
    `,
  },
  {
    version: 9,
    name: 'retention: finished jobs by end time, schedule history limits',
    sql: `
      CREATE INDEX jobs_finished ON jobs(end_time) WHERE end_time IS NOT NULL;
      ALTER TABLE schedules ADD COLUMN successful_jobs_history_limit INTEGER NOT NULL DEFAULT 3;
      ALTER TABLE schedules ADD COLUMN failed_jobs_history_limit INTEGER NOT NULL DEFAULT 1;
    `,
  },
  {
    version: 10,
    name: 'held jobs; listing by submission time',
    sql: `
      ALTER TABLE jobs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX jobs_by_created ON jobs(created_at);
    `,
  },
  {
    version: 11,
    name: "Ray's resource semantics: a memory request enforced only when asked; a driver pinned to the head node",
    sql: `
      ALTER TABLE jobs ADD COLUMN memory_limit INTEGER NOT NULL DEFAULT 1;
      ALTER TABLE jobs ADD COLUMN driver_on_head INTEGER NOT NULL DEFAULT 0;
    `,
  },
  {
    version: 12,
    name: 'jobs that run after others',
    sql: `ALTER TABLE jobs ADD COLUMN after_jobs TEXT;`,
  },
  {
    version: 13,
    name: 'node cordons, kept by name across an agent\'s registrations',
    sql: `
      CREATE TABLE node_cordons (name TEXT PRIMARY KEY, since INTEGER NOT NULL) WITHOUT ROWID;
    `,
  },
  {
    version: 14,
    name: 'array throttles and index lists',
    sql: `
      ALTER TABLE jobs ADD COLUMN max_concurrent INTEGER;
      ALTER TABLE jobs ADD COLUMN array_spec TEXT;
    `,
  },
  {
    version: 15,
    name: "each attempt's CPU time and peak memory, as its cgroups counted them",
    sql: `
      ALTER TABLE attempts ADD COLUMN cpu_s REAL;
      ALTER TABLE attempts ADD COLUMN peak_memory INTEGER;
    `,
  },
];
