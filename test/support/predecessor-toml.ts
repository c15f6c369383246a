/**
 * moonbit-registry-tools' registry.toml with every key it writes (issue 13), pointed at a fake
 * upstream: what the drop-in tests and the takeover benchmark start from.
 */
export function predecessorToml(url: string, options: { packages?: string[]; extra?: string } = {}): string {
  const packages = (options.packages ?? []).map((pattern) => `"${pattern}"`).join(', ');
  return `[registry]
name = "local-registry"
data_dir = "./data"

[upstream]            # legacy, before [[sources]]
enabled = true
url = "${url}"
index_url = "${url}/git/index"

[mirror]
auto_sync = false
sync_interval = "1h"
packages = [${packages}]         # patterns \`mirror\` uses when given none

[server]
host = "0.0.0.0"
port = 8080
base_url = "http://localhost:8080"
[server.smart_http]
enabled = false
git_http_backend_path = "/usr/lib/git-core/git-http-backend"

[git]
remote_url = ""
branch = "main"
auto_push = false
${options.extra ?? ''}`;
}
