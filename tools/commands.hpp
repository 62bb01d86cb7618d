#pragma once

#include <CLI/CLI.hpp>

namespace shmbox::cli {

// Each verb group registers its subcommands; a subcommand's callback stores the
// exit code in `exit_status`.
void add_segment_commands(CLI::App& app, int& exit_status);
void add_mailbox_commands(CLI::App& app, int& exit_status);
void add_message_commands(CLI::App& app, int& exit_status);
void add_status_commands(CLI::App& app, int& exit_status);
void add_bridge_command(CLI::App& app, int& exit_status);
void add_lock_command(CLI::App& app, int& exit_status);
void add_board_command(CLI::App& app, int& exit_status);
void add_topic_command(CLI::App& app, int& exit_status);
void add_service_commands(CLI::App& app, int& exit_status);
void add_parallel_command(CLI::App& app, int& exit_status);
void add_worker_command(CLI::App& app, int& exit_status);

}  // namespace shmbox::cli
