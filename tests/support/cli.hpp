// Running the shmbox tool from a test: directly, or inside a shell pipeline.
#pragma once

#include <string>
#include <vector>

#include "support/process.hpp"

namespace shmbox::test {

inline CommandResult shmbox_cli(std::vector<std::string> args, const std::string& input = {}) {
  args.insert(args.begin(), SHMBOX_CLI_PATH);
  return run_command(args, input);
}

// `script` run by sh, with $SHMBOX naming the tool.
inline CommandResult shell(const std::string& script, const std::string& input = {}) {
  return run_command({"/bin/sh", "-c", "SHMBOX=" SHMBOX_CLI_PATH "; " + script}, input);
}

}  // namespace shmbox::test
