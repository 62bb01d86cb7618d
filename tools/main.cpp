// shmbox: inspect and drive shmbox objects from the shell. A thin client of the
// library: every verb is one or two library calls and a report.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <sysexits.h>

#include <algorithm>
#include <string>

#include "cli_support.hpp"
#include "commands.hpp"
#include "shmbox/trust.hpp"

int main(int argc, char** argv) {
  CLI::App app{"shmbox: shared memory and message passing between processes"};
  app.set_version_flag("--version", SHMBOX_VERSION);
  app.require_subcommand(1);
  app.footer("Every error is one line on stderr, 'shmbox: OBJECT: cause', and one exit code per cause:\n" +
             shmbox::cli::exit_code_table());
  app.add_option_function<std::vector<uid_t>>(
      "--trust-user",
      [](const std::vector<uid_t>& uids) {
        for (const uid_t uid : uids) shmbox::trust_user(uid);
      },
      "Also open objects created by this uid (by default only our own user's and root's)");
  int exit_status = EX_OK;
  shmbox::cli::add_mailbox_commands(app, exit_status);
  shmbox::cli::add_message_commands(app, exit_status);
  shmbox::cli::add_status_commands(app, exit_status);
  shmbox::cli::add_bridge_command(app, exit_status);
  shmbox::cli::add_segment_commands(app, exit_status);
  shmbox::cli::add_lock_command(app, exit_status);
  shmbox::cli::add_board_command(app, exit_status);
  shmbox::cli::add_topic_command(app, exit_status);
  shmbox::cli::add_service_commands(app, exit_status);
  shmbox::cli::add_parallel_command(app, exit_status);
  shmbox::cli::add_worker_command(app, exit_status);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, as every other error: CLI11's own report adds a second.
    std::string cause = e.what();
    std::replace(cause.begin(), cause.end(), '\n', ' ');
    fmt::print(stderr, "shmbox: usage: {} (see shmbox --help)\n", cause);
    return EX_USAGE;
  }
  return exit_status;
}
