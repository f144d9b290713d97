"""Everything that talks to the outside: ``cucm`` (the cluster's APIs) and ``ca`` (certificate authorities)."""
