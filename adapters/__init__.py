"""Everything that talks to the outside: ``cucm`` (the cluster's APIs), ``ca`` (certificate authorities)."""
