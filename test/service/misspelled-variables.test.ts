/**
 * misspelledVariables (src/service/misspelled-variables.ts): a variable spelled like one of the
 * configuration's is named with it; the variables of a shell, a container, Kubernetes, npm and
 * gRPC are not (a warning of HOME or KUBERNETES_PORT at every start would teach people to ignore
 * the warning).
 */
import { describe, expect, it } from 'vitest';
import { closestName, editDistance } from '../../src/errors/index.js';
import { misspelledVariables } from '../../src/service/misspelled-variables.js';
import { misspelledConfigVariables, serverConfigSchema } from '../../src/service/server-config.js';

const known = Object.keys(serverConfigSchema.shape);
const set = (names: readonly string[]) => Object.fromEntries(names.map((n) => [n, 'x']));

describe('editDistance', () => {
  it('counts insertions, deletions, substitutions and adjacent swaps as one edit each', () => {
    expect(editDistance('WORKERS', 'WORKERS')).toBe(0);
    expect(editDistance('WORKER', 'WORKERS')).toBe(1);
    expect(editDistance('WROKERS', 'WORKERS')).toBe(1);
    expect(editDistance('PROT', 'PORT')).toBe(1);
    expect(editDistance('HOME', 'HOST')).toBe(2);
    expect(editDistance('PATH', 'PORT')).toBe(3);
    expect(editDistance('', 'PORT')).toBe(4);
  });
});

describe('closestName', () => {
  it('guesses at no name longer than 64 characters, and compares no names of distant lengths', () => {
    const long = 'k'.repeat(65);
    expect(closestName(long, [`${long}s`])).toBeUndefined();
    expect(closestName('k'.repeat(64), ['k'.repeat(63)])).toBe('k'.repeat(63));
    // A megabyte-long key is refused at once (it held the event loop for seconds).
    expect(closestName('x'.repeat(1 << 20), ['instances'])).toBeUndefined();
  });
});

describe('misspelledVariables', () => {
  it('names each misspelling with the variable it likely means', () => {
    const typos = {
      WORKER: 'WORKERS',
      WROKERS: 'WORKERS',
      Workers: 'WORKERS',
      log_level: 'LOG_LEVEL',
      LOGLEVEL: 'LOG_LEVEL',
      GRPCPORT: 'GRPC_PORT',
      PROT: 'PORT',
      port: 'PORT',
      MODEL_REPOSITRY: 'MODEL_REPOSITORY',
      BATCH_MAX_ROW: 'BATCH_MAX_ROWS',
      ADMIN_TOKN: 'ADMIN_TOKEN',
      // The unit left off: the variable with it, not DRIFT_WINDOWS one edit away.
      DRIFT_WINDOW: 'DRIFT_WINDOW_MS',
      REQUEST_TIMEOUT: 'REQUEST_TIMEOUT_MS',
    };
    expect(misspelledConfigVariables(set(Object.keys(typos)))).toEqual(
      Object.entries(typos)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, meant]) => ({ name, meant })),
    );
  });

  it('names neither the known variables nor those of the environments it runs in', () => {
    const environment = [
      ...known,
      // A shell's and a login's.
      ...'HOME HOSTNAME PATH PWD OLDPWD USER SHELL TERM LANG LANGUAGE LOGNAME MAIL SHLVL TMPDIR TEMP TMP TZ LC_ALL EDITOR VISUAL PAGER COLORTERM DISPLAY HISTSIZE HOSTTYPE OSTYPE MACHTYPE LS_COLORS LESSOPEN SSH_AUTH_SOCK SSH_CONNECTION XDG_RUNTIME_DIR SUDO_USER SUDO_UID SUDO_GID COLUMNS LINES'.split(
        ' ',
      ),
      // Node's, a container's, Kubernetes' service links, CI's, proxies.
      ...'NODE_ENV NODE_OPTIONS NODE_PATH NODE_VERSION YARN_VERSION UV_THREADPOOL_SIZE container KUBERNETES_PORT KUBERNETES_SERVICE_HOST KUBERNETES_SERVICE_PORT KUBERNETES_PORT_443_TCP_PORT NORMSERVE_PORT NORMSERVE_SERVICE_HOST NORMSERVE_SERVICE_PORT POD_NAME POD_IP CI GITHUB_ACTIONS HTTP_PROXY HTTPS_PROXY NO_PROXY DEBUG FORCE_COLOR NO_COLOR'.split(
        ' ',
      ),
      // Tokens of other tools (2 edits from API_TOKEN; APP_TOKEN, 1 edit, is warned of), and GRPC_HOST
      // (2 from GRPC_PORT; gRPC uses HOST).
      ...'NPM_TOKEN PAT_TOKEN GH_TOKEN GRPC_HOST'.split(' '),
      // npm run's, gRPC's own, and the tests' and tools' own.
      ...'INIT_CWD npm_command npm_execpath npm_node_execpath npm_lifecycle_event npm_package_name npm_package_version npm_package_json npm_config_cache npm_config_prefix npm_config_user_agent npm_config_userconfig npm_config_noproxy GRPC_VERBOSITY GRPC_TRACE GRPC_NODE_TRACE GRPC_NODE_VERBOSITY GRPC_DNS_RESOLVER NORMSERVE_TEST_TEMP_ROOT ONNXRUNTIME_NODE_INSTALL'.split(
        ' ',
      ),
    ];
    expect(misspelledVariables(set(environment), known)).toEqual([]);
  });

  it('names nothing when two variables are as close (no guess between them)', () => {
    expect(misspelledVariables(set(['AB_CD']), ['AB_CE', 'AB_CF'])).toEqual([]);
    expect(misspelledVariables(set(['AB_CD']), ['AB_CE'])).toEqual([
      { name: 'AB_CD', meant: 'AB_CE' },
    ]);
  });
});
