#include "dkim_settings.h"

namespace portcullis {

DkimSettings read_dkim_settings(const SettingTable& table, std::vector<SettingError>& errors) {
  DkimSettings settings;
  SettingsReader reader(table, errors);
  settings.max_signatures = reader.integer("max_signatures", settings.max_signatures, 1, 50);
  // 512 is the smallest key libopendkim's corpus tests use; smaller keys are trivially broken.
  settings.min_key_bits = reader.integer("min_key_bits", settings.min_key_bits, 512, 16384);
  settings.allow_sha1 = reader.boolean("allow_sha1", settings.allow_sha1);
  reader.reject_unknown({"max_signatures", "min_key_bits", "allow_sha1"});
  return settings;
}

}  // namespace portcullis
